"""Where a ship order is served from: the channel's ship-capable locations in priority
order, one location for the whole order when one can, split across locations only when no
single one can. The plan is made from stock read under lock
(inventory.services.stock_reserve_routed), so what it chooses is there to reserve."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from omnichannel.models import ChannelLocation, Location


class Shortfall(Exception):
    """No combination of candidates can serve a variant: how many they could give."""

    def __init__(self, variant_id: int, available: int) -> None:
        super().__init__(variant_id, available)
        self.variant_id = variant_id
        self.available = available


@dataclass(frozen=True)
class Candidate:
    location_id: int
    safety_stock: int
    location: Location | None = None  # loaded with the feed: the order's answer names it


# {channel_id: (time.monotonic() until which it holds, candidates)}: the feeds change a few
# times a year and every ship order reads them (a sixth of a placement's CPU, measured).
_candidates: dict[int, tuple[float, list[Candidate]]] = {}


def ship_candidates(*, channel_id: int, location_id: int | None = None) -> list[Candidate]:
    """The channel's ship-capable locations in priority order, kept ROUTING_CACHE_SECONDS.

    Stock itself is always checked under lock, so feeds a few seconds old never oversell: a
    feed, priority or safety stock saved in another process steers routing (and the safety
    stock an order keeps) within that time; in this process, at once (`forget_on_save`)."""
    now = time.monotonic()
    held = _candidates.get(channel_id)
    if held is not None and held[0] > now:
        candidates = held[1]
    else:
        feeds = (
            ChannelLocation.objects.filter(channel_id=channel_id, location__ships=True)
            .select_related("location")
            .order_by("priority", "location__code")
        )
        candidates = [Candidate(f.location_id, f.safety_stock, f.location) for f in feeds]
        if settings.ROUTING_CACHE_SECONDS > 0:
            _candidates[channel_id] = (now + settings.ROUTING_CACHE_SECONDS, candidates)
    if location_id is not None:
        return [c for c in candidates if c.location_id == location_id]
    return list(candidates)


def routing_forget() -> None:
    """Read every channel's feeds afresh on the next order."""
    _candidates.clear()


def forget_on_save(**kwargs) -> None:
    """Signal receiver (a feed or a location saved or deleted): read the feeds afresh, now
    and once the change is committed (an order in between may have read the old ones)."""
    _candidates.clear()
    transaction.on_commit(_candidates.clear)


def plan(
    *, wanted: dict[int, int], candidates: list[Candidate], sellable: dict[tuple[int, int], int]
) -> list[tuple[int, int, int]]:
    """[(variant_id, location_id, quantity)] serving `wanted` {variant_id: quantity} from
    `sellable` {(variant_id, location_id): units the channel may take there, its safety
    stock kept}; raises Shortfall when the candidates together cannot."""
    for candidate in candidates:  # one parcel when one location has everything
        if all(sellable.get((v, candidate.location_id), 0) >= q for v, q in wanted.items()):
            return [(v, candidate.location_id, q) for v, q in wanted.items()]

    allocation = []
    for variant_id, quantity in wanted.items():  # otherwise fill in priority order
        left = quantity
        for candidate in candidates:
            take = min(left, sellable.get((variant_id, candidate.location_id), 0))
            if take:
                allocation.append((variant_id, candidate.location_id, take))
                left -= take
            if not left:
                break
        if left:
            raise Shortfall(variant_id, quantity - left)
    return allocation
