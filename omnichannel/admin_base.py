"""Admin building blocks shared by the apps: pages for rows that only services or jobs write
(ledgers, orders, computed figures), shown to staff but never edited by hand; the staff
store limit applied to pages of rows kept at a location; the change history page of rows
staff do edit; and list pages that refuse a date lookup past the calendar."""

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db import models
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpResponseRedirect
from django.urls import reverse
from simple_history.admin import SimpleHistoryAdmin

from .resources import describe_errors
from .selectors import store_limit, within_limit

# The years a date lookup may name: a drill-down into year Y filters up to 1 January Y+1,
# and ISO year 9999 ends in Gregorian 10000, both past the last date Python has.
YEARS = range(1, 9999)
# What the date drill-down (date_hierarchy) turns into a date, beside its year.
DRILL_DOWN = {"month": range(1, 13), "day": range(1, 32)}
# Comparisons Django answers for a year by the first and last moment of that year.
_YEAR_COMPARISONS = {"exact", "gt", "gte", "lt", "lte"}


def _date_transforms(model, lookup: str) -> list[str] | None:
    """What follows the date or datetime field `lookup` filters on (["year"] for
    `created_at__year`, through relations too), or None when it filters on no date."""
    parts = lookup.split(LOOKUP_SEP)
    for at, part in enumerate(parts):
        try:
            field = model._meta.get_field(part)
        except FieldDoesNotExist:
            return None
        if isinstance(field, models.DateField):  # DateTimeField is one too
            return parts[at + 1 :]
        if not getattr(field, "path_infos", None):
            return None
        model = field.path_infos[-1].to_opts.model
    return None


def _within(values: list[str], allowed: range) -> bool:
    try:
        return all(int(value) in allowed for value in values)
    except ValueError:
        return False


class DateLookupsMixin:
    """A list page given a year (or, in its date drill-down, a month or day) no date has
    answers as Django does to any lookup it cannot run: back to the page, `?e=1`. Django
    checks only that the drill-down's values make a date, and none of a year lookup's:
    `?created_at__year=9999` (the drill-down's range ends in 10000), `=0`, `=10**20`,
    `created_at__year=9999&created_at__month=12` or `created_at__iso_year=9999` were a 500,
    raised while the page ran its query. Every admin uses it (tests/test_admin_dates.py)."""

    def get_changelist_instance(self, request):
        hierarchy = self.date_hierarchy
        for lookup, values in request.GET.lists():
            if hierarchy and lookup.startswith(hierarchy + LOOKUP_SEP):
                allowed = DRILL_DOWN.get(lookup.removeprefix(hierarchy + LOOKUP_SEP))
                if allowed is not None and not _within(values, allowed):
                    raise IncorrectLookupParameters(f"{lookup}: no such date")
            transforms = _date_transforms(self.model, lookup) or []
            for at, transform in enumerate(transforms):
                if transform not in ("year", "iso_year"):
                    continue
                if set(transforms[at + 1 :]) <= _YEAR_COMPARISONS and not _within(values, YEARS):
                    raise IncorrectLookupParameters(f"{lookup}: no such year")
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


class HistoryAdmin(DateLookupsMixin, SimpleHistoryAdmin):
    """The "History" page of a row: who (staff member or API client), when, from where
    (admin, CSV import, API, system), and each changed field's old -> new value.

    Read-only: a past version is shown, never saved back (django-simple-history's version
    page would save a POST from anyone allowed to view)."""

    history_list_display = ["source", "client"]

    def get_history_queryset(self, request, history_manager, pk_name, object_id):
        qs = super().get_history_queryset(request, history_manager, pk_name, object_id)
        return qs.select_related("history_api_client__channel")

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method not in ("GET", "HEAD"):
            raise PermissionDenied
        return super().history_form_view(request, object_id, version_id, extra_context)

    def revert_disabled(self, request, obj=None):
        return True

    def source(self, record):
        return record.get_history_source_display()

    def client(self, record):
        return record.history_api_client or ""
