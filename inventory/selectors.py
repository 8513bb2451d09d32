"""Read queries on stock and the ledger, confined to the locations the caller may see."""

from django.db.models import Count, F, Prefetch, Q, QuerySet

from catalog.selectors import variant_ids_by_sku
from omnichannel.compiled import CompiledQuery
from omnichannel.models import ApiClient, Channel
from omnichannel.selectors import StoreLimit, location_list, within_limit

from .models import ChannelAvailability, StockLevel, StockMovement, Transfer, TransferLine


def _visible(qs, client: ApiClient | None):
    if client is None:
        return qs
    return qs.filter(location__in=location_list(client=client))


def stock_list(*, client: ApiClient | None, limit: StoreLimit = None) -> QuerySet[StockLevel]:
    qs = within_limit(StockLevel.objects.select_related("variant", "location"), limit=limit)
    return _visible(qs, client).order_by("variant__sku", "location__code")


def movement_list(*, client: ApiClient | None, limit: StoreLimit = None) -> QuerySet[StockMovement]:
    qs = within_limit(StockMovement.objects.select_related("variant", "location"), limit=limit)
    return _visible(qs, client).order_by("-id")


def availability_list(*, channel: Channel) -> QuerySet[ChannelAvailability]:
    return (
        ChannelAvailability.objects.filter(channel=channel)
        .select_related("variant")
        .order_by("variant__sku")
    )


_AVAILABILITY = CompiledQuery(
    lambda channel_id, skus: (
        ChannelAvailability.objects.filter(channel_id=channel_id, variant__sku__in=skus)
        .order_by()
        .values_list("variant__sku", "available", "as_of", "locations")
    )
)


def availability_for_skus(*, channel: Channel, skus: list[str]) -> list[dict]:
    """One entry per requested SKU, in the order asked; a SKU never stocked shows 0, an
    unknown SKU is a 400 `unknown_sku`. One query when every SKU has a figure (the usual
    case); only the SKUs without one are looked up again, to tell unknown from never stocked.

    The storefront's hottest read: compiled once per shape (omnichannel.compiled), since
    building the same query with the ORM took three times the CPU of running it."""
    wanted = list(dict.fromkeys(skus))
    rows = {
        sku: {"available": available, "as_of": as_of, "locations": locations}
        for sku, available, as_of, locations in _AVAILABILITY.rows(channel.pk, wanted)
    }
    missing = [sku for sku in wanted if sku not in rows]
    if missing:
        variant_ids_by_sku(skus=missing)  # raises for the first unknown one
    never_stocked = {"available": 0, "as_of": None, "locations": []}
    return [{"sku": sku, **rows.get(sku, never_stocked)} for sku in wanted]


def transfer_list(*, client: ApiClient | None, limit: StoreLimit = None) -> QuerySet[Transfer]:
    """Transfers from or to a location the caller may see, with their lines."""
    qs = Transfer.objects.select_related("from_location", "to_location").prefetch_related(
        Prefetch("lines", queryset=TransferLine.objects.select_related("variant"))
    )
    qs = within_limit(qs, limit=limit, fields=("from_location", "to_location"))
    if client is not None:
        visible = location_list(client=client)
        qs = qs.filter(Q(from_location__in=visible) | Q(to_location__in=visible))
    return qs.order_by("-id")


# Stock health, one rule for the admin's filter and the dashboard. A shelf is out when it has
# nothing available to sell (available = on_hand - reserved <= 0); an oversold one (negative on
# hand, after an offline sale) is out too, and flagged besides, to be checked on the shelf.
LOW_STOCK = 3
NOTHING_AVAILABLE = Q(on_hand__lte=F("reserved"))
OVERSOLD = Q(on_hand__lt=0)


def low_stock(*, low: int = LOW_STOCK) -> Q:
    """1 to `low` units available."""
    return Q(on_hand__gt=F("reserved")) & Q(on_hand__lte=F("reserved") + low)


def stock_health_by_location(*, low: int = LOW_STOCK, limit: StoreLimit = None) -> list[dict]:
    """Per location (those of the store limit, when there is one): SKUs out (nothing
    available, oversold ones included), low (1 to `low` available) and negative (oversold
    offline, to review: also counted as out)."""
    return list(
        within_limit(StockLevel.objects.all(), limit=limit)
        .values(location_code=F("location__code"))
        .annotate(
            out=Count("pk", filter=NOTHING_AVAILABLE),
            low=Count("pk", filter=low_stock(low=low)),
            negative=Count("pk", filter=OVERSOLD),
            skus=Count("pk"),
        )
        .order_by("location_code")
    )


def stock_out_rate_by_channel() -> dict[str, float]:
    """Per channel: the share of the SKUs it sells (published there, variant and product
    active: what products/ lists) that it currently shows as unavailable (a SKU never
    stocked counts as out). A discontinued SKU keeps its price row: counted, it made a
    shop that had everything it sells look partly out of stock."""
    from catalog.models import ChannelPrice

    on_sale = Q(variant__is_active=True, variant__product__is_active=True)
    published = dict(
        ChannelPrice.objects.filter(on_sale, published=True)
        .values("channel__code")
        .annotate(n=Count("pk"))
        .values_list("channel__code", "n")
    )
    available = dict(
        ChannelAvailability.objects.filter(
            on_sale,
            available__gt=0,
            variant__prices__published=True,
            variant__prices__channel_id=F("channel_id"),
        )
        .values("channel__code")
        .annotate(n=Count("pk"))
        .values_list("channel__code", "n")
    )
    return {
        code: round(1 - available.get(code, 0) / total, 4)
        for code, total in sorted(published.items())
        if total
    }


def transfer_acting_location_id(transfer: Transfer, *, action: str) -> int:
    """The location whose stock a transfer step changes, so the one that must carry it out:
    the origin requests, ships and cancels (its units are reserved, leave or are released),
    the destination receives."""
    return transfer.to_location_id if action == "receive" else transfer.from_location_id
