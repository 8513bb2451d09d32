"""Admin building blocks shared by the apps: pages for rows that only services or jobs write
(ledgers, orders, computed figures), shown to staff but never edited by hand; the staff
store limit applied to pages of rows kept at a location, and the pages it hides or keeps
read-only (whole-business figures, channel-wide settings); the change history page of rows
staff do edit; and list pages that filter only as their filters do and refuse a date lookup
past the calendar."""

from django.contrib import admin, messages
from django.contrib.admin.exceptions import DisallowedModelAdminLookup
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpResponseRedirect
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from .resources import describe_errors
from .selectors import store_limit, within_limit

# What the date drill-down (date_hierarchy) turns into a date: a drill-down into year Y
# filters up to 1 January Y+1, so 9999 ends past the last date Python has.
DRILL_DOWN = {"year": range(1, 9999), "month": range(1, 13), "day": range(1, 32)}


def _within(values: list[str], allowed: range) -> bool:
    try:
        return all(int(value) in allowed for value in values)
    except ValueError:
        return False


class UnlistedLookup(IncorrectLookupParameters, DisallowedModelAdminLookup):
    """A lookup in a list page's address that none of its filters makes. The page answers it
    as a lookup it cannot run (back to the page, `?e=1`); another view reading the page's
    filters (the CSV export) answers 400, as Django does to a lookup it refuses."""


def _links_one_row(model, lookup: str) -> bool:
    """Whether `lookup` names one related row by its primary key the way Django's related
    filters spell it (`member__id__exact`): the links from one row's page to the list of its
    rows (a member's "All their orders")."""
    name, _, rest = lookup.partition(LOOKUP_SEP)
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    if not (field.many_to_one or field.one_to_one) or not field.concrete:
        return False
    return rest == f"{field.target_field.attname}{LOOKUP_SEP}exact"


class FilterLookupsChangeList(ChangeList):
    """A list filters by what its filters (list_filter), its search and its date drill-down
    send, and by a related row's primary key (links from other pages), nothing else. Django
    runs any other lookup on the model's own fields the address names, whether the page shows
    the field or not: `?secret__startswith=` listed a webhook subscription or none, so staff
    who may only view subscriptions read their signing secret 16 guesses a digit (an API
    client's key hash, a user's password hash likewise); `?number__regex=(` or
    `?total__gt=1e999999` were a 500, the database refusing what Django let through."""

    def get_filters(self, request):
        asked = set(self.get_filters_params())
        filters = super().get_filters(request)
        remaining = filters[2]  # what no filter (nor the drill-down) took
        hierarchy = self.date_hierarchy
        if hierarchy and f"{hierarchy}{LOOKUP_SEP}year" in asked:
            # The drill-down's own bounds (any sent under those names are replaced by them).
            asked -= {f"{hierarchy}{LOOKUP_SEP}gte", f"{hierarchy}{LOOKUP_SEP}lt"}
        for lookup in asked & set(remaining):
            if not _links_one_row(self.model, lookup):
                raise UnlistedLookup(f"{lookup}: no filter of this page")
        return filters


class DateLookupsMixin:
    """A list page whose date drill-down is given a year, month or day no date has answers
    as Django does to any lookup it cannot run: back to the page, `?e=1`. Django checks only
    that the drill-down's values make a date: `?created_at__year=9999` (its range ends in
    10000), `=0`, `=10**20` or `created_at__year=9999&created_at__month=12` were a 500,
    raised while the page ran its query. Every admin uses it (tests/test_admin_dates.py).

    Its list (and what reads the list's filters: the CSV export) takes no other lookup than
    its filters' (FilterLookupsChangeList): a year lookup of another date, past the calendar
    or not, is none."""

    def get_changelist(self, request, **kwargs):
        return FilterLookupsChangeList

    def get_changelist_instance(self, request):
        hierarchy = self.date_hierarchy
        for part, allowed in DRILL_DOWN.items() if hierarchy else ():
            if not _within(request.GET.getlist(f"{hierarchy}{LOOKUP_SEP}{part}"), allowed):
                raise IncorrectLookupParameters(f"{hierarchy}: no such date")
        return super().get_changelist_instance(request)


class AllOrNothingImportMixin:
    """For an admin importing a sheet (django-import-export): the confirm step imports the
    file again; if the data or the staff member's rights changed since the preview and a row
    no longer fits, nothing was written, and the page says so instead of "Import finished"."""

    def process_result(self, result, request):
        if result.has_errors() or result.has_validation_errors():
            messages.error(
                request,
                f"Nothing was imported, the file no longer fits: {describe_errors(result)}. "
                "Upload it again to see every row.",
            )
            info = self.get_model_info()
            return HttpResponseRedirect(
                reverse("admin:{}_{}_import".format(*info), current_app=self.admin_site.name)
            )
        return super().process_result(result, request)


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ChangedFieldsOnlyMixin:
    """A change page writes the fields its form changed, nothing else. Django's default
    saves every column as the page read it, unlocked, so a state a service changed between
    the page's read and its save was put back: a transfer shipped meanwhile returned to
    `requested` (and could be cancelled, releasing units reserved for other orders), an order
    picked up meanwhile became ready again, a token revoked meanwhile worked again."""

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        """Each field also sends back what the page showed, so a field is changed when the
        staff member changed it, not when the row changed since the page was opened (a
        needs_review flag cleared meanwhile was ticked again by a save that touched it not)."""
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if field is not None:
            field.show_hidden_initial = True
        return field

    def save_model(self, request, obj, form, change):
        if change:
            changed = form.changed_data
            if changed:  # and its time of change (auto_now is written only when named)
                meta = obj._meta
                changed = [
                    *changed,
                    *(f.name for f in meta.concrete_fields if getattr(f, "auto_now", False)),
                ]
            obj.save(update_fields=changed)  # nothing changed: nothing written
        else:
            super().save_model(request, obj, form, change)


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class AllowedLocationFilter(admin.RelatedFieldListFilter):
    """A location filter offering only the locations the staff member may see."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin)
        limit = store_limit(user=request.user)
        if limit is None:
            return field.get_choices(include_blank=False, ordering=ordering)
        return field.get_choices(
            include_blank=False, ordering=ordering, limit_choices_to={"pk__in": limit}
        )


class StoreLimitedAdminMixin:
    """Pages of rows kept at a location (stock, ledger, transfers, returns): a store-limited
    staff member sees and changes only the rows of their stores; another store's row answers
    as a missing one does (Django's "doesn't exist" redirect)."""

    store_limit_fields: tuple[str, ...] = ("location",)

    def get_queryset(self, request):
        return within_limit(
            super().get_queryset(request),
            limit=store_limit(user=request.user),
            fields=self.store_limit_fields,
        )


class WholeBusinessAdminMixin:
    """Pages of figures over every store and channel (member scores, cohorts): hidden from a
    store-limited staff member, as analytics.api refuses them the same figures."""

    def has_module_permission(self, request):
        return store_limit(user=request.user) is None and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return store_limit(user=request.user) is None and super().has_view_permission(request, obj)


class HeadOfficeWritesMixin:
    """Pages of settings that hold for a whole channel or business, every store included (a
    channel's availability webhook, which pushes every store's stock): a store-limited staff
    member adds, changes and deletes none of them, whatever their model permissions."""

    def has_add_permission(self, request, *args):
        return store_limit(user=request.user) is None and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return store_limit(user=request.user) is None and super().has_change_permission(
            request, obj
        )

    def has_delete_permission(self, request, obj=None):
        return store_limit(user=request.user) is None and super().has_delete_permission(
            request, obj
        )


class HistoryAdmin(DateLookupsMixin, SimpleHistoryAdmin):
    """The "History" page of a row: who (staff member or API client), when, from where
    (admin, CSV import, API, system), and each changed field's old -> new value.

    Read-only: a past version is shown, never saved back (django-simple-history's version
    page would save a POST from anyone allowed to view)."""

    history_list_display = ["source", "client"]

    def get_history_queryset(self, request, history_manager, pk_name, object_id):
        qs = super().get_history_queryset(request, history_manager, pk_name, object_id)
        qs = qs.select_related("history_api_client__channel", "history_api_client__location")
        limit = store_limit(user=request.user)
        if limit is None:
            return qs
        # A change made by another store's till, for staff limited to some stores: its name
        # and store told them where the person shops, as the member's page does not.
        outside = Q(history_api_client__location__isnull=False) & ~Q(
            history_api_client__location_id__in=limit
        )
        return qs.annotate(client_outside_limit=ExpressionWrapper(outside, BooleanField()))

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return True

    def source(self, record):
        return record.get_history_source_display()

    def client(self, record):
        client = record.history_api_client
        if client is None:
            return ""
        if getattr(record, "client_outside_limit", False):
            return f"a till of another store [{client.channel.code}]"
        return client
