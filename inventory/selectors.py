"""Read queries on stock and the ledger, confined to the locations the caller may see."""

from django.db.models import QuerySet

from omnichannel.models import ApiClient
from omnichannel.selectors import location_list

from .models import StockLevel, StockMovement


def _visible(qs, client: ApiClient | None):
    if client is None:
        return qs
    return qs.filter(location__in=location_list(client=client))


def stock_list(*, client: ApiClient | None) -> QuerySet[StockLevel]:
    qs = StockLevel.objects.select_related("variant", "location")
    return _visible(qs, client).order_by("variant__sku", "location__code")


def movement_list(*, client: ApiClient | None) -> QuerySet[StockMovement]:
    qs = StockMovement.objects.select_related("variant", "location")
    return _visible(qs, client).order_by("-id")
