"""Every change to stock goes through here: one transaction each, all lines or none.

Rules kept in this module:
- `available = on_hand - reserved`; a reservation or a sale never takes more than is
  available (an offline POS sale is the one exception: the goods already left the shelf).
- Every change to `on_hand` or `reserved` writes a ledger row in the same transaction, so the
  ledger always sums to the level.
- Stock rows are locked in one global order, (variant_id, location_id), so two operations on
  the same SKUs in opposite order wait for each other instead of deadlocking. Operations that
  may meet a (variant, location) with no row yet create and lock it in that same order, with a
  single sorted upsert.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework import status

from omnichannel.compiled import CompiledQuery, bulk_insert, row_update
from omnichannel.errors import DomainError

from .availability import outbox_record
from .models import StockLevel, StockMovement

Reason = StockMovement.Reason
Key = tuple[int, int]  # (variant_id, location_id)


@dataclass(frozen=True)
class StockLine:
    variant_id: int
    location_id: int
    quantity: int


class InsufficientStock(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "insufficient_stock"
    default_detail = "Not enough stock available."


class InvalidQuantity(DomainError):
    code = "invalid_quantity"
    default_detail = "Quantities must be whole numbers greater than zero."


class NotReserved(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "not_reserved"
    default_detail = "Fewer units are reserved than the operation releases."


class NegativeStock(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "negative_stock"
    default_detail = "The change would leave less than nothing on hand."


MAX_QUANTITY = 1_000_000


@dataclass(frozen=True)
class Actor:
    """Who caused a movement, for the ledger: a staff user, an API client, or the system."""

    user_id: int | None = None
    api_client_id: int | None = None


SYSTEM = Actor()


def is_whole(value, *, low: int, high: int = MAX_QUANTITY) -> bool:
    """An int (not a bool, not a float) within [low, high]."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _merge(lines: Iterable[StockLine]) -> dict[Key, int]:
    merged: dict[Key, int] = {}
    for line in lines:
        if not is_whole(line.quantity, low=1):
            raise InvalidQuantity(quantity=line.quantity)
        key = (line.variant_id, line.location_id)
        merged[key] = merged.get(key, 0) + line.quantity
    if not merged:
        raise InvalidQuantity("No lines given.")
    return merged


def _lock(keys: Iterable[Key], *, create_missing: bool) -> dict[Key, StockLevel]:
    """Lock the stock rows for `keys` in global order and return them by key.

    Without `create_missing`, a key with no row is simply absent (nothing there to take).
    """
    ordered = sorted(set(keys))
    if create_missing:
        now = timezone.now()
        StockLevel.objects.bulk_create(
            [StockLevel(variant_id=v, location_id=loc, updated_at=now) for v, loc in ordered],
            update_conflicts=True,
            unique_fields=["variant", "location"],
            update_fields=["updated_at"],
        )
    match = Q()
    for variant_id, location_id in ordered:
        match |= Q(variant_id=variant_id, location_id=location_id)
    rows = (
        StockLevel.objects.select_for_update().filter(match).order_by("variant_id", "location_id")
    )
    return {(row.variant_id, row.location_id): row for row in rows}


# Every ship order locks its variants at all the channel's ship-from locations: a query
# with two `__in` lookups on foreign keys, costly to build (0.35 ms of CPU, measured; the
# pairs above cost a fifth of that), so compiled once per shape (omnichannel.compiled).
_LEVEL_FIELDS = [f.attname for f in StockLevel._meta.concrete_fields]
_LOCK_GRID = CompiledQuery(
    lambda variant_ids, location_ids: (
        StockLevel.objects.select_for_update()
        .filter(variant_id__in=variant_ids, location_id__in=location_ids)
        .order_by("variant_id", "location_id")  # the global lock order
        .values_list(*_LEVEL_FIELDS)
    )
)


def _levels(rows) -> dict[Key, StockLevel]:
    """Locked rows as StockLevel instances, by key."""
    levels = (StockLevel.from_db("default", _LEVEL_FIELDS, row) for row in rows)
    return {(level.variant_id, level.location_id): level for level in levels}


def _lock_reserved(wanted: dict[Key, int]) -> dict[Key, StockLevel]:
    """Lock the rows and check each has at least the wanted units reserved."""
    levels = _lock(wanted, create_missing=False)
    for key, quantity in wanted.items():
        level = levels.get(key)
        if level is None or level.reserved < quantity:
            raise NotReserved(reserved=level.reserved if level else 0, quantity=quantity)
    return levels


def _shortage(
    level: StockLevel | None, key: Key, wanted: int, keep: int = 0, *, gone: bool = False
) -> InsufficientStock:
    """Not enough `available` for `wanted`, or with `gone`: reserved units that are no
    longer on hand (damaged, stolen, counted short, sold offline since), so they cannot leave;
    a count or a receipt that finds them, or cancelling what they were promised to, settles it."""
    from catalog.models import Variant
    from omnichannel.models import Location

    sku = Variant.objects.filter(pk=key[0]).values_list("sku", flat=True).first()
    location = Location.objects.filter(pk=key[1]).values_list("code", flat=True).first()
    available = max(level.available - keep if level is not None else 0, 0)
    if not gone:
        return InsufficientStock(
            f"Only {available} of {sku} available at {location}; {wanted} asked.",
            sku=sku,
            location=location,
            available=available,
        )
    return InsufficientStock(
        f"Only {max(level.on_hand, 0)} of {sku} on hand at {location}; {wanted} to go out. "
        "Count or receive the stock first, or cancel.",
        sku=sku,
        location=location,
        available=available,
        on_hand=level.on_hand,
    )


_LEVEL_WRITTEN = ("on_hand", "reserved", "updated_at")


def _apply(
    levels: dict[Key, StockLevel],
    changes: dict[Key, tuple[int, int]],
    *,
    reason: str,
    reference: str,
    actor: Actor,
    note: str = "",
) -> list[StockMovement]:
    """Write the new levels and their ledger rows: `changes[key] = (delta, reserved_delta)`."""
    touched, movements = [], []
    for key, (delta, reserved_delta) in sorted(changes.items()):
        if delta == 0 and reserved_delta == 0:
            continue
        level = levels[key]
        level.on_hand += delta
        level.reserved += reserved_delta
        touched.append(level)
        movements.append(
            StockMovement(
                variant_id=key[0],
                location_id=key[1],
                delta=delta,
                reserved_delta=reserved_delta,
                reason=reason,
                reference=reference[:80],
                note=note[:500],
                created_by_id=actor.user_id,
                api_client_id=actor.api_client_id,
            )
        )
    if touched:
        now = timezone.now()
        for level in touched:  # rows are locked: writing the new values is safe
            level.updated_at = now
            row_update(level, fields=_LEVEL_WRITTEN)
        bulk_insert(movements)
        outbox_record(variant_ids=[level.variant_id for level in touched])
    return movements


@transaction.atomic
def stock_reserve(
    *,
    lines: Iterable[StockLine],
    reference: str,
    keep: dict[Key, int] | None = None,
    actor: Actor = SYSTEM,
) -> list[StockMovement]:
    """Promise units to an order or a transfer: every line is reserved, or none (409).

    `keep` holds back units per (variant, location): a channel's safety stock at that
    location, which its orders must not take."""
    wanted = _merge(lines)
    keep = keep or {}
    levels = _lock(wanted, create_missing=False)
    for key, quantity in sorted(wanted.items()):
        level = levels.get(key)
        if level is None or level.available - keep.get(key, 0) < quantity:
            raise _shortage(level, key, quantity, keep=keep.get(key, 0))
    changes = {key: (0, quantity) for key, quantity in wanted.items()}
    return _apply(levels, changes, reason=Reason.RESERVATION, reference=reference, actor=actor)


@transaction.atomic(savepoint=False)
def stock_reserve_routed(
    *,
    variant_ids: Iterable[int],
    keep: dict[int, int],
    route: Callable[[dict[Key, int]], list[StockLine]],
    reference: str,
    actor: Actor = SYSTEM,
) -> list[StockLine]:
    """Reserve where `route` decides, deciding under lock: the rows of `variant_ids` at every
    location of `keep` ({location_id: units held back there, a channel's safety stock}) are
    locked first; `route` is given what each may give, {(variant_id, location_id): units},
    and returns the lines to reserve, which are then reserved, all of them. Nothing can sell
    in between, so the decision needs no second look (locking a variant's rows at all the
    locations, not only the chosen one, is the price).

    No savepoint of its own: whatever this raises, `route`'s own errors included, leaves the
    enclosing transaction to be rolled back, as an order placement does anyway."""
    levels = _levels(_LOCK_GRID.rows(sorted(set(variant_ids)), sorted(keep)))
    sellable = {key: max(0, level.available - keep[key[1]]) for key, level in levels.items()}
    lines = route(sellable)
    wanted = _merge(lines)
    for key, quantity in sorted(wanted.items()):
        if key[1] not in keep or sellable.get(key, 0) < quantity:  # a route that overreaches
            raise _shortage(levels.get(key), key, quantity, keep=keep.get(key[1], 0))
    changes = {key: (0, quantity) for key, quantity in wanted.items()}
    _apply(levels, changes, reason=Reason.RESERVATION, reference=reference, actor=actor)
    return lines


@transaction.atomic
def stock_release(
    *, lines: Iterable[StockLine], reference: str, actor: Actor = SYSTEM
) -> list[StockMovement]:
    """Give back reserved units (a cancelled order or transfer)."""
    wanted = _merge(lines)
    levels = _lock_reserved(wanted)
    changes = {key: (0, -quantity) for key, quantity in wanted.items()}
    return _apply(levels, changes, reason=Reason.RELEASE, reference=reference, actor=actor)


@transaction.atomic
def stock_commit(
    *,
    lines: Iterable[StockLine],
    reference: str,
    reason: str = Reason.SALE,
    actor: Actor = SYSTEM,
) -> list[StockMovement]:
    """Reserved units leave the location (shipped, picked up, transferred out): only units
    that are on hand, so `on_hand` never goes below zero but by an oversold offline sale."""
    wanted = _merge(lines)
    levels = _lock_reserved(wanted)
    for key, quantity in sorted(wanted.items()):
        if levels[key].on_hand < quantity:
            raise _shortage(levels[key], key, quantity, gone=True)
    changes = {key: (-quantity, -quantity) for key, quantity in wanted.items()}
    return _apply(levels, changes, reason=reason, reference=reference, actor=actor)


@transaction.atomic
def stock_sell_now(
    *,
    lines: Iterable[StockLine],
    reference: str,
    allow_oversell: bool = False,
    actor: Actor = SYSTEM,
) -> tuple[list[StockMovement], list[Key]]:
    """A sale at the till: units leave at once. Returns the ledger rows and oversold keys.

    `allow_oversell` is for offline POS sales synced later: the customer already walked out
    with the goods, so the sale stands even if it takes `available` below zero.
    """
    wanted = _merge(lines)
    levels = _lock(wanted, create_missing=allow_oversell)
    oversold = []
    for key, quantity in sorted(wanted.items()):
        level = levels.get(key)
        if level is None or level.available < quantity:
            if not allow_oversell:
                raise _shortage(level, key, quantity)
            oversold.append(key)
    changes = {key: (-quantity, 0) for key, quantity in wanted.items()}
    movements = _apply(levels, changes, reason=Reason.SALE, reference=reference, actor=actor)
    return movements, oversold


@transaction.atomic
def stock_receive(
    *,
    lines: Iterable[StockLine],
    reference: str,
    reason: str = Reason.RECEIPT,
    actor: Actor = SYSTEM,
    note: str = "",
) -> list[StockMovement]:
    """Units arrive: a delivery, a return put back on the shelf, a transfer received."""
    wanted = _merge(lines)
    levels = _lock(wanted, create_missing=True)
    changes = {key: (quantity, 0) for key, quantity in wanted.items()}
    return _apply(levels, changes, reason=reason, reference=reference, actor=actor, note=note)


ADJUSTMENT_REASONS = {Reason.RECEIPT, Reason.DAMAGE, Reason.THEFT, Reason.CORRECTION}


@transaction.atomic
def stock_adjust(
    *,
    variant_id: int,
    location_id: int,
    delta: int,
    reason: str,
    reference: str = "",
    note: str = "",
    actor: Actor = SYSTEM,
) -> tuple[StockLevel, StockMovement]:
    """A manual change of `on_hand` by `delta`: a receipt adds, damage and theft remove, a
    correction goes either way (the sign must match the reason, or the ledger lies)."""
    if reason not in ADJUSTMENT_REASONS:
        raise DomainError(
            f"Adjustments take a reason in {sorted(ADJUSTMENT_REASONS)}.", reason=reason
        )
    if not is_whole(delta, low=-MAX_QUANTITY) or delta == 0:
        raise InvalidQuantity("delta must be a non-zero whole number.", delta=delta)
    if (reason == Reason.RECEIPT and delta < 0) or (
        reason in (Reason.DAMAGE, Reason.THEFT) and delta > 0
    ):
        raise InvalidQuantity(
            "A receipt adds stock, damage and theft remove it; a correction goes either way.",
            delta=delta,
            reason=reason,
        )
    key = (variant_id, location_id)
    level = _lock([key], create_missing=True)[key]
    if level.on_hand + delta < 0:
        raise NegativeStock(on_hand=level.on_hand, delta=delta)
    [movement] = _apply(
        {key: level}, {key: (delta, 0)}, reason=reason, reference=reference, note=note, actor=actor
    )
    return level, movement


@transaction.atomic
def stock_count(
    *,
    variant_id: int,
    location_id: int,
    counted: int,
    reference: str = "",
    note: str = "",
    actor: Actor = SYSTEM,
) -> tuple[StockLevel, StockMovement | None]:
    """A cycle count: `on_hand` becomes what was counted; the ledger gets the difference."""
    if not is_whole(counted, low=0):
        raise InvalidQuantity("counted must be a whole number, zero or more.", counted=counted)
    key = (variant_id, location_id)
    level = _lock([key], create_missing=True)[key]
    delta = counted - level.on_hand
    if not delta:
        return level, None
    [movement] = _apply(
        {key: level},
        {key: (delta, 0)},
        reason=Reason.COUNT,
        reference=reference,
        note=note,
        actor=actor,
    )
    return level, movement


def stock_lock(*, keys: Iterable[Key]) -> None:
    """Lock these (variant, location) rows now, in the global order, creating any missing,
    for the caller's transaction: a sheet of counts applied row by row in its file's order
    would otherwise take the locks in that order, and deadlock with a sale taking them in
    the global one."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("stock_lock holds its locks for the caller's transaction: open one.")
    keys = set(keys)
    if keys:  # no keys would match every row
        _lock(keys, create_missing=True)


@dataclass(frozen=True)
class Count:
    variant_id: int
    location_id: int
    counted: int


@transaction.atomic
def stock_count_many(
    *, counts: Iterable[Count], reference: str = "count", actor: Actor = SYSTEM
) -> int:
    """Many cycle counts in one transaction (a store's full count, demo data): the same rule
    as `stock_count` for each, rows locked in the global order. Returns how many changed."""
    wanted: dict[Key, int] = {}
    for count in counts:
        if not is_whole(count.counted, low=0):
            raise InvalidQuantity(counted=count.counted)
        wanted[(count.variant_id, count.location_id)] = count.counted
    if not wanted:
        return 0
    ordered = sorted(wanted)
    now = timezone.now()
    StockLevel.objects.bulk_create(
        [StockLevel(variant_id=v, location_id=loc, updated_at=now) for v, loc in ordered],
        update_conflicts=True,
        unique_fields=["variant", "location"],
        update_fields=["updated_at"],
        batch_size=1000,
    )
    variant_ids = {v for v, _ in ordered}
    location_ids = {loc for _, loc in ordered}
    levels = {
        (row.variant_id, row.location_id): row
        for row in StockLevel.objects.select_for_update()
        .filter(variant_id__in=variant_ids, location_id__in=location_ids)
        .order_by("variant_id", "location_id")
        if (row.variant_id, row.location_id) in wanted
    }
    changed, movements = [], []
    for key in ordered:
        level = levels[key]
        delta = wanted[key] - level.on_hand
        if not delta:
            continue
        level.on_hand += delta
        level.updated_at = now
        changed.append(level)
        movements.append(
            StockMovement(
                variant_id=key[0],
                location_id=key[1],
                delta=delta,
                reason=Reason.COUNT,
                reference=reference[:80],
                created_by_id=actor.user_id,
                api_client_id=actor.api_client_id,
            )
        )
    if changed:
        StockLevel.objects.bulk_update(changed, ["on_hand", "updated_at"], batch_size=1000)
        StockMovement.objects.bulk_create(movements, batch_size=1000)
        outbox_record(variant_ids=[level.variant_id for level in changed])
    return len(changed)
