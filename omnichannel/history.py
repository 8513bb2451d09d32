"""Who changed a price, a product or a member, when, and from what to what.

django-simple-history keeps a copy of the row after each save or delete (one history table
per model) and shows it on the admin's "History" page, old -> new per field. This module adds
what the library does not know about this project: the API client behind a change (clients
authenticate by token, they are not users) and where the change came from (`admin`, `import`
for a CSV sheet, `api`, or `system` for commands and tasks).

Use `tracked_history(...)` on a model; saves that only move a figure kept by its own ledger
(points, search text) use `save_without_historical_record` so the history stays about people's
changes.
"""

from django.contrib.auth.models import AbstractBaseUser
from django.db import models
from django.dispatch import receiver
from simple_history.models import HistoricalRecords
from simple_history.signals import pre_create_historical_record


class Source(models.TextChoices):
    ADMIN = "admin"
    IMPORT = "import", "CSV import"
    API = "api", "API"
    SYSTEM = "system"


class HistoryActor(models.Model):
    """Added to each history row: the API client (if any) and the source of the change."""

    history_api_client = models.ForeignKey(
        "omnichannel.ApiClient",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name="API client",
    )
    history_source = models.CharField(
        max_length=10, choices=Source.choices, default=Source.SYSTEM, verbose_name="source"
    )

    class Meta:
        abstract = True


def _staff_user(request=None, **kwargs):
    """The staff member behind the request; None for an API client or nobody."""
    user = getattr(request, "user", None)
    return user if isinstance(user, AbstractBaseUser) and user.is_authenticated else None


def tracked_history(*, excluded_fields: list[str] | None = None, **options) -> HistoricalRecords:
    return HistoricalRecords(
        bases=[HistoryActor],
        get_user=_staff_user,
        excluded_fields=excluded_fields,
        history_id_field=models.BigAutoField(primary_key=True),
        **options,
    )


def source_of(request) -> str:
    if request is None:
        return Source.SYSTEM
    match = getattr(request, "resolver_match", None)
    if match is not None and match.namespace == "admin":
        # django-import-export's upload and confirm steps: `<app>_<model>_[process_]import`
        return Source.IMPORT if match.url_name.endswith("import") else Source.ADMIN
    if request.path.startswith("/api/"):
        return Source.API
    return Source.SYSTEM


@receiver(pre_create_historical_record, dispatch_uid="omnichannel.history.actor")
def _record_actor(sender, history_instance, **kwargs) -> None:
    if not isinstance(history_instance, HistoryActor):
        return
    from .models import ApiClient

    request = getattr(HistoricalRecords.context, "request", None)
    client = getattr(request, "user", None)
    if isinstance(client, ApiClient):
        history_instance.history_api_client = client
    history_instance.history_source = source_of(request)
