"""Orders for staff: filters by channel, status, location and date; each order with its
lines, allocations, payments, returns and the stock movements it caused; cancel and pickup
steps through the same services as the API. A store-limited staff member sees and moves on
the orders of their stores, by the rules of orders.selectors, as in the API."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils import timezone
from django.utils.html import format_html_join

from inventory.models import StockMovement
from inventory.services import Actor
from omnichannel.admin_base import (
    AllowedLocationFilter,
    ChangedFieldsOnlyMixin,
    DateLookupsMixin,
    ReadOnlyInline,
    StoreLimitedAdminMixin,
)
from omnichannel.errors import DomainError
from omnichannel.selectors import locations_allowed, store_limit, within_limit

from . import services
from .models import Allocation, Order, OrderLine, Payment, Return, ReturnLine
from .selectors import order_changeable, orders_within_limit


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["sku", "name", "quantity", "unit_price", "line_total", "discount"]
    readonly_fields = fields


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = ["method", "amount"]
    readonly_fields = fields


class ReturnInline(StoreLimitedAdminMixin, ReadOnlyInline):
    """The order's returns; for a store-limited staff member those taken at their stores,
    as the return list shows them (an order of their store may come back at another)."""

    model = Return
    fields = ["created_at", "location", "restock", "refund", "points_refunded"]
    readonly_fields = fields
    show_change_link = True


# The attribute OrderAdmin.get_object puts the request's store limit in, on the order.
_STORE_LIMIT = "_admin_store_limit"
_UNKNOWN = object()


class LocationFilter(admin.SimpleListFilter):
    title = "location"
    parameter_name = "at"

    def lookups(self, request, model_admin):
        limit = store_limit(user=request.user)
        return list(locations_allowed(limit=limit).values_list("code", "name"))

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(
            Q(location__code=self.value())
            | Q(pickup_location__code=self.value())
            | Q(lines__allocations__location__code=self.value())
        ).distinct()


@admin.register(Order)
class OrderAdmin(DateLookupsMixin, ChangedFieldsOnlyMixin, admin.ModelAdmin):
    list_display = [
        "number",
        "channel",
        "fulfillment",
        "status",
        "total",
        "needs_review",
        "created_at",
    ]
    list_filter = ["channel", "status", "fulfillment", "needs_review", LocationFilter, "created_at"]
    search_fields = ["number", "client_id", "lines__sku"]
    date_hierarchy = "created_at"
    list_select_related = ["channel"]
    readonly_fields = [
        "number",
        "channel",
        "fulfillment",
        "status",
        "location",
        "pickup_location",
        "currency",
        "subtotal",
        "discount",
        "total",
        "client_id",
        "api_client",
        "created_by",
        "created_at",
        "allocations",
        "stock_movements",
    ]
    fields = [*readonly_fields, "needs_review"]
    inlines = [OrderLineInline, PaymentInline, ReturnInline]
    actions = ["cancel", "ready_for_pickup", "picked_up", "ship", "mark_reviewed"]

    def has_add_permission(self, request):
        return False  # orders come from the channels, through the API

    def has_delete_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return orders_within_limit(
            super().get_queryset(request), limit=store_limit(user=request.user)
        )

    def get_object(self, request, object_id, from_field=None):
        """The order of this request, carrying the staff member's store limit: its read-only
        fields are given the order alone, and this admin instance is shared by every thread
        (the limit kept on it would show one request another's rows)."""
        order = super().get_object(request, object_id, from_field)
        if order is not None:
            setattr(order, _STORE_LIMIT, store_limit(user=request.user))
        return order

    @admin.display(description="allocations")
    def allocations(self, order):
        rows = Allocation.objects.filter(line__order=order).select_related("line", "location")
        return (
            format_html_join(
                "",
                "<div>{} x{} from {}</div>",
                ((a.line.sku, a.quantity, a.location.code) for a in rows),
            )
            or "-"
        )

    @admin.display(description="stock movements")
    def stock_movements(self, order):
        """The ledger rows of the order and its returns; for a store-limited staff member
        those at their stores (a return taken at another store is that store's row)."""
        limit = getattr(order, _STORE_LIMIT, _UNKNOWN)
        if limit is _UNKNOWN:  # not read through get_object: whose page it is is unknown
            return "-"
        references = [
            order.reference,
            *(f"return:{pk}" for pk in order.returns.values_list("pk", flat=True)),
        ]
        rows = within_limit(
            StockMovement.objects.filter(reference__in=references), limit=limit
        ).select_related("variant", "location")
        return (
            format_html_join(
                "",
                "<div>{} {} {} {} (reserved {})</div>",
                (
                    (
                        timezone.localtime(m.created_at).strftime("%Y-%m-%d %H:%M"),
                        m.reason,
                        f"{m.variant.sku}@{m.location.code}",
                        f"{m.delta:+d}",
                        f"{m.reserved_delta:+d}",
                    )
                    for m in rows
                ),
            )
            or "-"
        )

    def _each(self, request, queryset, action: str):
        done = 0
        limit = store_limit(user=request.user)
        for order in queryset.prefetch_related("lines__allocations"):
            if not order_changeable(order, limit=limit):
                messages.error(
                    request,
                    f"{order.number}: it also involves a store outside your staff account's limit.",
                )
                continue
            try:
                services.order_transition(
                    order_id=order.pk, action=action, actor=Actor(user_id=request.user.pk)
                )
                done += 1
            except DomainError as exc:
                messages.error(request, f"{order.number}: {exc.detail}")
        if done:
            messages.success(request, f"{done} order(s): {action.replace('_', ' ')}.")

    @admin.action(description="Cancel (releases reserved stock)", permissions=["change"])
    def cancel(self, request, queryset):
        self._each(request, queryset, "cancel")

    @admin.action(description="Mark ready for pickup", permissions=["change"])
    def ready_for_pickup(self, request, queryset):
        self._each(request, queryset, "ready_for_pickup")

    @admin.action(description="Mark picked up (stock leaves)", permissions=["change"])
    def picked_up(self, request, queryset):
        self._each(request, queryset, "picked_up")

    @admin.action(description="Mark shipped (stock leaves)", permissions=["change"])
    def ship(self, request, queryset):
        self._each(request, queryset, "ship")

    @admin.action(description="Oversold sale reviewed: clear the flag", permissions=["change"])
    def mark_reviewed(self, request, queryset):
        cleared = services.orders_mark_reviewed(
            order_ids=list(queryset.values_list("pk", flat=True))
        )
        messages.success(request, f"{cleared} order(s) reviewed.")


class ReturnLineInline(ReadOnlyInline):
    model = ReturnLine
    fields = ["line", "quantity", "refund"]
    readonly_fields = fields


@admin.register(Return)
class ReturnAdmin(DateLookupsMixin, StoreLimitedAdminMixin, admin.ModelAdmin):
    """A store-limited staff member sees the returns taken at their stores."""

    list_display = ["id", "order", "location", "restock", "refund", "created_at"]
    list_filter = [("location", AllowedLocationFilter), "restock"]
    search_fields = ["order__number"]
    readonly_fields = [
        "order",
        "location",
        "restock",
        "refund",
        "points_refunded",
        "api_client",
        "created_by",
        "created_at",
    ]
    inlines = [ReturnLineInline]
    list_select_related = ["order", "location"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
