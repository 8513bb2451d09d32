"""Merchandisers' stock pages. Stock never changes here except through inventory.services:
the level and the ledger are read-only; adjustments, counts and transfer steps call the
same services as the API."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import DataError, models
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from import_export.admin import ImportExportMixin

from catalog.models import Variant
from omnichannel.admin_base import (
    AllOrNothingImportMixin,
    AllowedLocationFilter,
    ChangedFieldsOnlyMixin,
    DateLookupsMixin,
    HeadOfficeWritesMixin,
    ReadOnlyAdminMixin,
    StoreLimitedAdminMixin,
)
from omnichannel.errors import OUT_OF_RANGE_DETAIL, DomainError
from omnichannel.models import Location
from omnichannel.selectors import location_allowed, locations_allowed, store_limit

from . import services, transfers, webhooks
from .models import (
    ChannelAvailability,
    StockLevel,
    StockMovement,
    Transfer,
    TransferLine,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)
from .resources import CycleCountResource
from .selectors import (
    LOW_STOCK,
    NOTHING_AVAILABLE,
    OVERSOLD,
    low_stock,
    transfer_acting_location_id,
)


class StockHealthFilter(admin.SimpleListFilter):
    """The dashboard's stock health counts (`stock_health_by_location`), shelf by shelf."""

    title = "stock health"
    parameter_name = "health"
    RULES = {"negative": OVERSOLD, "out": NOTHING_AVAILABLE, "low": low_stock(low=LOW_STOCK)}

    def lookups(self, request, model_admin):
        return [
            ("negative", "Negative on hand (oversold, to review)"),
            ("out", "Nothing available (out, oversold included)"),
            ("low", f"Low (1 to {LOW_STOCK} available)"),
        ]

    def queryset(self, request, queryset):
        rule = self.RULES.get(self.value())
        return queryset if rule is None else queryset.filter(rule)


class AdjustmentForm(forms.Form):
    """One adjustment or count; the locations offered (and accepted) are the staff member's."""

    sku = forms.CharField(max_length=64)
    location = forms.ModelChoiceField(Location.objects.none(), to_field_name="code")
    kind = forms.ChoiceField(
        choices=[("delta", "Change on hand by"), ("counted", "Cycle count: on hand is now")]
    )
    quantity = forms.IntegerField(min_value=-services.MAX_QUANTITY, max_value=services.MAX_QUANTITY)
    reason = forms.ChoiceField(
        choices=[(r, r) for r in sorted(services.ADJUSTMENT_REASONS)],
        help_text="Ignored for a cycle count (reason `count`).",
    )
    note = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, limit, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["location"].queryset = locations_allowed(limit=limit)

    def clean_sku(self):
        sku = self.cleaned_data["sku"].strip()
        if not Variant.objects.filter(sku=sku).exists():
            raise forms.ValidationError("No variant has that SKU.")
        return sku


@admin.register(StockLevel)
class StockLevelAdmin(
    DateLookupsMixin,
    StoreLimitedAdminMixin,
    ReadOnlyAdminMixin,
    AllOrNothingImportMixin,
    ImportExportMixin,
    admin.ModelAdmin,
):
    """Import a cycle count as CSV (`sku,location,counted`); export gives the count sheet.
    A store-limited staff member sees, exports, adjusts and counts their stores only."""

    resource_classes = [CycleCountResource]

    list_display = ["sku", "product", "location", "on_hand", "reserved", "available", "updated_at"]
    list_filter = [StockHealthFilter, ("location", AllowedLocationFilter)]
    search_fields = ["variant__sku", "variant__barcode", "variant__product__name"]
    list_select_related = ["variant__product", "location"]
    import_export_change_list_template = "admin/inventory/stocklevel/change_list.html"

    def has_import_permission(self, request):
        return request.user.has_perm("inventory.add_stockmovement")

    def has_export_permission(self, request):
        return request.user.has_perm("inventory.view_stocklevel")

    def get_import_resource_kwargs(self, request, **kwargs):
        return {
            **super().get_import_resource_kwargs(request, **kwargs),
            "limit": store_limit(user=request.user),
        }

    @admin.display(ordering="variant__sku")
    def sku(self, obj):
        return obj.variant.sku

    @admin.display(ordering="variant__product__name")
    def product(self, obj):
        return obj.variant.product.name

    @admin.display(description="available")
    def available(self, obj):
        return obj.available

    def get_urls(self):
        return [
            path(
                "adjust/",
                self.admin_site.admin_view(self.adjust_view),
                name="inventory_stocklevel_adjust",
            ),
            *super().get_urls(),
        ]

    def adjust_view(self, request):
        """Adjust or count one SKU at one location, through the stock services."""
        if not request.user.has_perm("inventory.add_stockmovement"):
            raise PermissionDenied
        form = AdjustmentForm(request.POST or None, limit=store_limit(user=request.user))
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            variant_id = Variant.objects.get(sku=data["sku"]).pk
            actor = services.Actor(user_id=request.user.pk)
            try:
                if data["kind"] == "counted":
                    services.stock_count(
                        variant_id=variant_id,
                        location_id=data["location"].pk,
                        counted=data["quantity"],
                        reference="count",
                        note=data["note"],
                        actor=actor,
                    )
                else:
                    services.stock_adjust(
                        variant_id=variant_id,
                        location_id=data["location"].pk,
                        delta=data["quantity"],
                        reason=data["reason"],
                        reference="adjustment",
                        note=data["note"],
                        actor=actor,
                    )
            except DomainError as exc:
                form.add_error(None, exc.detail)
            except DataError:  # a level past the column's range: nothing written
                form.add_error(None, OUT_OF_RANGE_DETAIL)
            else:
                messages.success(request, f"Stock of {data['sku']} at {data['location']} updated.")
                return redirect(reverse("admin:inventory_stocklevel_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Adjust or count stock",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/inventory/adjust.html", context)


@admin.register(StockMovement)
class StockMovementAdmin(
    DateLookupsMixin, StoreLimitedAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin
):
    """The ledger: append-only, here and in the database."""

    list_display = [
        "created_at",
        "variant",
        "location",
        "delta",
        "reserved_delta",
        "reason",
        "reference",
        "created_by",
        "api_client",
    ]
    list_filter = ["reason", ("location", AllowedLocationFilter)]
    search_fields = [
        "variant__sku",
        "reference",
        "note",
        "created_by__username",
        "api_client__name",
    ]
    date_hierarchy = "created_at"
    list_select_related = [
        "variant",
        "location",
        "created_by",
        "api_client__channel",
        "api_client__location",
    ]


class TransferLineInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = TransferLine
    fields = ["variant", "quantity", "shipped_quantity", "received_quantity", "discrepancy"]
    readonly_fields = fields

    @admin.display(description="received - shipped")
    def discrepancy(self, obj):
        return obj.discrepancy


@admin.register(Transfer)
class TransferAdmin(
    DateLookupsMixin, ChangedFieldsOnlyMixin, StoreLimitedAdminMixin, admin.ModelAdmin
):
    """A store-limited staff member sees the transfers from or to their stores; ships and
    cancels from them, receives at them (the same rule as the API)."""

    store_limit_fields = ("from_location", "to_location")
    list_display = [
        "id",
        "from_location",
        "to_location",
        "status",
        "created_at",
        "shipped_at",
        "received_at",
    ]
    list_filter = [
        "status",
        ("from_location", AllowedLocationFilter),
        ("to_location", AllowedLocationFilter),
    ]
    readonly_fields = [
        "from_location",
        "to_location",
        "status",
        "created_by",
        "api_client",
        "created_at",
        "shipped_at",
        "received_at",
    ]
    fields = [*readonly_fields, "note"]
    inlines = [TransferLineInline]
    actions = ["ship", "receive_as_shipped", "cancel"]
    list_select_related = ["from_location", "to_location"]

    def has_add_permission(self, request):
        return False  # created through the API (POS) or stock/transfers/, where stock is reserved

    def has_delete_permission(self, request, obj=None):
        # Deleting one would strand its stock: reserved at the origin with nothing left to
        # release it, or in transit with nothing left to receive. Cancel it instead.
        return False

    STEPS = {
        "ship": (transfers.transfer_ship, "shipped"),
        "receive": (transfers.transfer_receive, "received"),
        "cancel": (transfers.transfer_cancel, "cancelled"),
    }

    def _each(self, request, queryset, action: str):
        operation, done = self.STEPS[action]
        ok = 0
        limit = store_limit(user=request.user)
        for transfer in queryset:
            acting = transfer_acting_location_id(transfer, action=action)
            if not location_allowed(limit=limit, location_id=acting):
                messages.error(
                    request,
                    f"Transfer #{transfer.pk}: your staff account is limited to other stores "
                    f"than the one that must {action} it.",
                )
                continue
            try:
                operation(transfer_id=transfer.pk, actor=services.Actor(user_id=request.user.pk))
                ok += 1
            except DomainError as exc:
                messages.error(request, f"Transfer #{transfer.pk}: {exc.detail}")
            except DataError:  # a level past the column's range: nothing written
                messages.error(request, f"Transfer #{transfer.pk}: {OUT_OF_RANGE_DETAIL}")
        if ok:
            messages.success(request, f"{ok} transfer(s) {done}.")

    @admin.action(description="Ship the selected transfers", permissions=["change"])
    def ship(self, request, queryset):
        self._each(request, queryset, "ship")

    @admin.action(description="Receive as shipped (no discrepancy)", permissions=["change"])
    def receive_as_shipped(self, request, queryset):
        self._each(request, queryset, "receive")

    @admin.action(description="Cancel (before shipping)", permissions=["change"])
    def cancel(self, request, queryset):
        self._each(request, queryset, "cancel")


@admin.register(ChannelAvailability)
class ChannelAvailabilityAdmin(DateLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["variant", "channel", "available", "as_of"]
    list_filter = ["channel"]
    search_fields = ["variant__sku"]
    list_select_related = ["variant", "channel"]


class WebhookSubscriptionForm(forms.ModelForm):
    def clean_url(self):
        """Spelt as the API stores it (`webhooks.webhook_url_normal`), so that the one-active-
        per-URL rule sees another spelling of an endpoint as the same URL."""
        try:
            return webhooks.webhook_url_normal(self.cleaned_data["url"])
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(HeadOfficeWritesMixin, DateLookupsMixin, admin.ModelAdmin):
    """The secret signs the deliveries: shown, once saved, to staff who may change
    subscriptions (who set the subscriber up with it), never to those who only read them
    (with it anyone could sign a fake availability push).

    A subscription pushes its channel's availability at every store, as the channel's own
    settings hold for every store: a store-limited staff member only reads them, without the
    secret (as the API gives a webhook to a channel's system, never to a store's till)."""

    form = WebhookSubscriptionForm
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ["url", "channel", "is_active", "created_at"]
    list_filter = ["channel", "is_active"]

    def get_readonly_fields(self, request, obj=None):
        return ["secret", "created_at"]

    def get_fields(self, request, obj=None):
        fields = ["channel", "url", "is_active", "created_at"]
        # Not on the add page: the secret shown there was not the one saved (each form
        # makes a new one); it is on the subscription's page once saved.
        if obj is not None and self.has_change_permission(request, obj):
            fields.insert(3, "secret")
        return fields


class WebhookAttemptInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = WebhookAttempt
    fields = ["attempted_at", "status_code", "error", "duration_ms"]
    readonly_fields = fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(DateLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """The delivery log: what was sent, how often, what the subscriber answered."""

    list_display = ["id", "subscription", "status", "attempts", "next_attempt_at", "created_at"]
    list_filter = ["status", "subscription__channel"]
    readonly_fields = [
        "subscription",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "created_at",
        "delivered_at",
    ]
    inlines = [WebhookAttemptInline]
    list_select_related = ["subscription"]
