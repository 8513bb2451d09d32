from django import forms
from django.contrib import admin, messages
from django.db.models import F, Q, Window
from django.db.models.functions import RowNumber
from django.urls import reverse
from django.utils.html import format_html

from omnichannel.admin_base import DateLookupsMixin, HistoryAdmin, ReadOnlyInline
from omnichannel.selectors import store_limit
from orders.models import Order
from orders.selectors import orders_within_limit

from . import privacy
from .models import Member, MemberAlias, MemberChannel, MemberEvent, PointsEntry
from .selectors import alias_holder, contact_is, order_number_seen, with_order_visibility
from .services import (
    InvalidContact,
    MemberConflict,
    consent_dated,
    member_balance_kept,
    normalize_email,
    normalize_phone,
)


class PointsInline(ReadOnlyInline):
    """Every entry (the balance is their sum); for a store-limited staff member, the order of
    an entry only when it is one of their stores' orders."""

    model = PointsEntry
    fk_name = "member"
    fields = ["created_at", "kind", "points", "order_number", "note"]
    readonly_fields = fields
    ordering = ["-id"]

    def get_queryset(self, request):
        return with_order_visibility(
            super().get_queryset(request).select_related("order"),
            limit=store_limit(user=request.user),
        )

    @admin.display(description="order")
    def order_number(self, entry):
        if entry.order_id is None:
            return "-"
        return order_number_seen(entry) or "another store's order"


class AliasInline(ReadOnlyInline):
    """Emails and phones kept from members merged into this one: they still find them."""

    model = MemberAlias
    fields = ["kind", "value", "created_at"]
    readonly_fields = fields
    verbose_name = "other contact (from a merge)"


class SeenInline(ReadOnlyInline):
    """Where the member was seen; for a store-limited staff member, at their stores (and in
    channels without a store) only, as members/{id}/ lists their stores."""

    model = MemberChannel
    fields = ["channel", "location", "first_seen", "last_seen"]
    readonly_fields = fields

    def get_queryset(self, request):
        seen = super().get_queryset(request).select_related("channel", "location")
        limit = store_limit(user=request.user)
        if limit is None:
            return seen
        return seen.filter(Q(location__isnull=True) | Q(location_id__in=limit))


class OrderInline(ReadOnlyInline):
    """The member's latest orders; the page links to all of them (MemberAdmin.all_orders).
    Every order they ever placed was a row here, each reading its channel in a query of its
    own."""

    model = Order
    fields = ["number", "channel", "fulfillment", "status", "total", "created_at"]
    readonly_fields = fields
    show_change_link = True
    ordering = ["-created_at", "-pk"]
    verbose_name_plural = "latest orders"
    latest = 20

    def get_queryset(self, request):
        """A store-limited staff member sees the member's orders at their stores only."""
        visible = orders_within_limit(
            super().get_queryset(request).select_related("channel"),
            limit=store_limit(user=request.user),
        )
        # Numbered per member, newest first: the page filters on its member afterwards.
        recency = Window(RowNumber(), partition_by=F("member_id"), order_by=self.ordering)
        return visible.annotate(recency=recency).filter(recency__lte=self.latest)


class MemberForm(forms.ModelForm):
    """Email and phone as the tills and the storefront find people: lower-cased, E.164. Typed
    as they came ("Jo.Doe@Example.COM", "06 12 34 56 78"), the next look-up missed them and
    made the same person a second member."""

    class Meta:
        model = Member
        fields = ["email", "phone", "first_name", "last_name", "email_consent", "sms_consent"]

    def _normalized(self, field: str, normalize):
        try:
            value = normalize(self.cleaned_data.get(field))
        except InvalidContact as exc:
            raise forms.ValidationError(exc.extra["errors"][field][0]) from exc
        holder = alias_holder(kind=field, value=value, other_than=self.instance.pk)
        if holder is not None:
            # It finds that member (merged into them): two members would answer to it.
            raise forms.ValidationError(
                f"This {field} belongs to member {holder}, kept from a merge."
            )
        return value

    def clean_email(self):
        return self._normalized("email", normalize_email)

    def clean_phone(self):
        return self._normalized("phone", normalize_phone)


@admin.register(Member)
class MemberAdmin(HistoryAdmin):
    """Members, with a "History" page of profile changes (who, when, old -> new); merges,
    exports and erasures are also listed under member events. A consent changed here is
    dated now, from "admin". A member is never deleted here: erasure removes the person
    the way the API does (history and stored answers included), for staff who may delete
    members and are not limited to some stores."""

    form = MemberForm

    list_display = [
        "id",
        "email",
        "phone",
        "first_name",
        "last_name",
        "tier",
        "points",
        "created_at",
    ]
    list_filter = ["tier", "email_consent", "sms_consent", "seen_in__channel"]
    search_fields = ["email", "phone", "first_name", "last_name"]
    readonly_fields = [
        "points",
        "tier",
        "created_at",
        "updated_at",
        "email_consent_at",
        "email_consent_source",
        "sms_consent_at",
        "sms_consent_source",
    ]
    inlines = [AliasInline, SeenInline, OrderInline, PointsInline]
    actions = ["merge", "erase"]

    def has_delete_permission(self, request, obj=None):
        return False  # Django's delete would keep their history and log; see `erase`

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and request.user.has_perm("orders.view_order"):
            fields = [*fields, "all_orders"]
        return fields

    @admin.display(description="orders")
    def all_orders(self, member):
        """The order list filtered by the member: the page lists only the latest."""
        return format_html(
            '<a href="{}?member__id__exact={}">All their orders</a> (the latest {} are listed '
            "below)",
            reverse("admin:orders_order_changelist"),
            member.pk,
            OrderInline.latest,
        )

    def save_model(self, request, obj, form, change):
        changed = [kind for kind in ("email", "sms") if f"{kind}_consent" in form.changed_data]
        consent_dated(member=obj, kinds=changed, source="admin")
        if change:
            member_balance_kept(member=obj)
        super().save_model(request, obj, form, change)

    def has_erase_permission(self, request) -> bool:
        return (
            request.user.has_perm("customers.delete_member")
            and store_limit(user=request.user) is None
        )

    @admin.action(
        description="Erase the selected members (personal data removed, orders kept)",
        permissions=["erase"],
    )
    def erase(self, request, queryset):
        erased = 0
        for member_id in queryset.values_list("pk", flat=True):
            try:
                privacy.member_erase(member_id=member_id, staff_id=request.user.pk)
                erased += 1
            except privacy.MemberGone:  # erased or merged by someone else meanwhile
                messages.warning(request, f"Member {member_id} was already gone.")
        messages.success(request, f"{erased} member(s) erased.")

    def get_search_results(self, request, queryset, search_term):
        """A phone or an email typed any way (06 12 34 56 78, Jo@Exámple.com) finds the
        member with it, or with it kept from a merge, among the members the list's filters
        leave (`queryset` comes filtered): taken from every member, a basic member was
        listed under tier=gold, and went with the page's to an action."""
        filtered = queryset
        queryset, distinct = super().get_search_results(request, queryset, search_term)
        for kind, normalize in (("phone", normalize_phone), ("email", normalize_email)):
            try:
                value = normalize(search_term)
            except InvalidContact:
                continue
            if value:
                queryset |= filtered.filter(contact_is(kind=kind, value=value))
        return queryset, distinct

    @admin.action(
        description="Merge the two selected members (into the older)", permissions=["change"]
    )
    def merge(self, request, queryset):
        members = list(queryset.order_by("pk"))
        if len(members) != 2:
            messages.error(request, "Select exactly two members to merge.")
            return
        survivor, other = members
        try:
            privacy.member_merge(
                survivor_id=survivor.pk, other_id=other.pk, staff_id=request.user.pk
            )
        except (privacy.MemberGone, MemberConflict) as exc:
            # Merged or erased by someone else meanwhile, or a contact finds a third member.
            messages.error(request, exc.detail)
            return
        messages.success(request, f"Member {other.pk} merged into {survivor.pk}.")


@admin.register(MemberEvent)
class MemberEventAdmin(DateLookupsMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "member_id_ref", "other_id_ref", "staff"]
    list_filter = ["kind"]
    list_select_related = ["staff"]  # nullable: the admin does not join it by itself

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
