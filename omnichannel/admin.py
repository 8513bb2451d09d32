from axes.admin import AccessAttemptAdmin, AccessFailureLogAdmin, AccessLogAdmin
from axes.conf import settings as axes_settings
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.forms.formsets import DELETION_FIELD_NAME

from . import services
from .admin_base import (
    AllowedLocationFilter,
    ChangedFieldsOnlyMixin,
    DateLookupsMixin,
    HeadOfficeWritesMixin,
    StoreLimitedAdminMixin,
    WholeBusinessAdminMixin,
)
from .models import (
    ApiClient,
    Channel,
    ChannelLocation,
    Location,
    StaffStoreLimit,
    WorkerHeartbeat,
)
from .selectors import location_allowed, locations_allowed, store_limit


class ChannelLocationInline(admin.TabularInline):
    """A channel's feeds. A store-limited staff member changes (or deletes) only their
    stores' rows, and adds rows at their stores only: another store's row is shown with its
    fields disabled (Django then keeps what it holds, whatever the page sends)."""

    model = ChannelLocation
    extra = 0
    autocomplete_fields = ["location"]
    fields = ["priority", "location", "safety_stock"]
    ordering = ["priority"]

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        limit = store_limit(user=request.user)
        if limit is None:
            return formset

        class WithinLimit(formset):
            def _construct_form(self, i, **kwargs):
                form = super()._construct_form(i, **kwargs)
                if form.instance.pk and not location_allowed(
                    limit=limit, location_id=form.instance.location_id
                ):
                    for name in [*ChannelLocationInline.fields, DELETION_FIELD_NAME]:
                        if name in form.fields:
                            form.fields[name].disabled = True
                elif "location" in form.fields:  # a row of theirs, or a new one
                    form.fields["location"].queryset = locations_allowed(limit=limit)
                return form

        return WithinLimit


@admin.register(Channel)
class ChannelAdmin(DateLookupsMixin, admin.ModelAdmin):
    """A channel's own settings (its currency, its points rate) hold for every store it
    sells from: a store-limited staff member adds and deletes no channel (deleting one takes
    every store's feeds with it) and sees those settings read-only; they change the feeds of
    their own stores only (ChannelLocationInline)."""

    list_display = ["code", "name", "kind", "currency"]
    list_filter = ["kind", "currency"]
    search_fields = ["code", "name"]
    inlines = [ChannelLocationInline]

    def has_add_permission(self, request):
        return super().has_add_permission(request) and store_limit(user=request.user) is None

    def has_delete_permission(self, request, obj=None):
        return (
            super().has_delete_permission(request, obj) and store_limit(user=request.user) is None
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and store_limit(user=request.user) is not None:
            return [f.name for f in Channel._meta.fields if f.editable and not f.primary_key]
        return super().get_readonly_fields(request, obj)


@admin.register(Location)
class LocationAdmin(DateLookupsMixin, admin.ModelAdmin):
    list_display = ["code", "name", "kind", "ships", "pickup", "city", "country"]
    list_filter = ["kind", "ships", "pickup", "country"]
    search_fields = ["code", "name", "city", "postal_code"]
    # Every location is listed and readable (transfers, returns and feeds name them); a
    # store-limited staff member changes and deletes only their stores, and adds none (a
    # new location is outside their limit, which only staff without one set).

    def has_add_permission(self, request):
        return super().has_add_permission(request) and store_limit(user=request.user) is None

    @staticmethod
    def _theirs(request, location) -> bool:
        """The list (no location) or one of their stores."""
        limit = store_limit(user=request.user)
        return location is None or location_allowed(limit=limit, location_id=location.pk)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self._theirs(request, obj)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self._theirs(request, obj)

    fieldsets = [
        (None, {"fields": ["code", "name", "kind", "ships", "pickup"]}),
        (
            "Address",
            {
                "fields": [
                    "address_line1",
                    "address_line2",
                    ("postal_code", "city"),
                    ("region", "country"),
                ]
            },
        ),
    ]


ROTATE_HELP = (
    "The channel and store of a client never change: for another, add a new client. A token "
    'lost or leaked: in the list, select this client and run "Give the selected clients new '
    'tokens". The client keeps its history, so a till resending offline sales with the new '
    "token does not sell them twice (a new client would); the old token stops working."
)


@admin.register(ApiClient)
class ApiClientAdmin(
    DateLookupsMixin, ChangedFieldsOnlyMixin, StoreLimitedAdminMixin, admin.ModelAdmin
):
    """Creating a client here shows its token once, in the confirmation message; so does
    giving an existing client a new token (the list's action), which keeps the client.

    A store-limited staff member sees, rotates and revokes only the tills of their stores
    (StoreLimitedAdminMixin): a till's new token acts at its store, and a client of no
    location acts for its whole channel, so those are for staff without a limit."""

    list_display = ["name", "channel", "location", "key_prefix", "last_used_at", "revoked_at"]
    list_filter = ["channel", ("location", AllowedLocationFilter), "revoked_at"]
    search_fields = ["name", "key_prefix"]
    list_select_related = ["channel", "location"]  # location: nullable, not joined by itself
    readonly_fields = ["key_prefix", "created_at", "last_used_at", "revoked_at"]
    fields = ["name", "channel", "location", *readonly_fields]
    actions = ["rotate_token", "revoke"]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        """A store-limited staff member adds a till at one of their stores only: neither at
        another store nor a client of none (which acts for its whole channel)."""
        limit = store_limit(user=request.user) if db_field.name == "location" else None
        if limit is None:
            return super().formfield_for_foreignkey(db_field, request, **kwargs)
        kwargs["queryset"] = locations_allowed(limit=limit)
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        field.required = True
        field.error_messages["required"] = (
            "You add tills at your stores only: pick one (a client of no store acts for its "
            "whole channel, for staff without a store limit)."
        )
        return field

    def get_readonly_fields(self, request, obj=None):
        # The scope of an existing token never changes: for another channel or store, make a
        # new client. A lost or leaked token: the "new token" action, which keeps the client.
        return [*self.readonly_fields, "channel", "location"] if obj else self.readonly_fields

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            return fieldsets
        return [(None, {**fieldsets[0][1], "description": ROTATE_HELP})]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        key = services.api_client_issue_token(client=obj)
        messages.warning(request, f"Token for '{obj.name}' (shown only now, copy it): {key}")

    @admin.action(
        description="Give the selected clients new tokens (the old ones stop working)",
        permissions=["change"],
    )
    def rotate_token(self, request, queryset):
        for client in queryset:
            key = services.api_client_rotate_token(client_id=client.pk)
            self.log_change(request, client, "Gave a new token; the old one is refused.")
            again = (
                " (it was revoked: it works again, with this token)" if client.revoked_at else ""
            )
            messages.warning(
                request, f"New token for '{client.name}'{again} (shown only now, copy it): {key}"
            )

    @admin.action(description="Revoke the selected clients' tokens", permissions=["change"])
    def revoke(self, request, queryset):
        for client in queryset:
            services.api_client_revoke(client_id=client.pk)
        self.message_user(request, f"Revoked {queryset.count()} client(s).")


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(DateLookupsMixin, admin.ModelAdmin):
    list_display = ["hostname", "seen_at"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class StaffStoreLimitInline(admin.StackedInline):
    """On a staff member's page: add a store limit to confine them to some locations,
    delete it to lift the limit. Superusers are never limited."""

    model = StaffStoreLimit
    extra = 0
    max_num = 1
    filter_horizontal = ["locations"]
    verbose_name_plural = "store limit (none: every store)"


class HeadOfficeOnlyMixin(WholeBusinessAdminMixin, HeadOfficeWritesMixin):
    """Pages for head office: the staff accounts, their groups and the login records. A
    store-limited staff member does not see them whatever their model permissions: changing
    a user (their own too) means changing groups, permissions, `is_superuser` and the store
    limit, so the one who may do it would lift their own limit; the login records name every
    staff account and where it logged in from."""


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StaffUserAdmin(HeadOfficeOnlyMixin, DateLookupsMixin, UserAdmin):
    inlines = [*UserAdmin.inlines, StaffStoreLimitInline]


# The pages other packages register, given the same refusal of a date past the calendar as
# ours (a login attempt's list answered ?attempt_time__year=9999 with a 500).
admin.site.unregister(Group)


@admin.register(Group)
class StaffGroupAdmin(HeadOfficeOnlyMixin, DateLookupsMixin, GroupAdmin):
    pass


if axes_settings.AXES_ENABLE_ADMIN:
    admin.site.unregister([AccessAttempt, AccessLog, AccessFailureLog])

    @admin.register(AccessAttempt)
    class LoginAttemptAdmin(HeadOfficeOnlyMixin, DateLookupsMixin, AccessAttemptAdmin):
        pass

    @admin.register(AccessLog)
    class LoginLogAdmin(HeadOfficeOnlyMixin, DateLookupsMixin, AccessLogAdmin):
        pass

    @admin.register(AccessFailureLog)
    class LoginFailureLogAdmin(HeadOfficeOnlyMixin, DateLookupsMixin, AccessFailureLogAdmin):
        pass
