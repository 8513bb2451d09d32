"""Admin building blocks shared by the apps: pages for rows that only services or jobs write
(ledgers, orders, computed figures), shown to staff but never edited by hand, and the change
history page of rows staff do edit."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from simple_history.admin import SimpleHistoryAdmin


class ReadOnlyAdminMixin:
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    extra = 0
    can_delete = False


class HistoryAdmin(SimpleHistoryAdmin):
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
