"""Demo stock for `seed_demo`: each demo location holds a plausible quantity of each demo
variant. The retailer's own articles and locations (one of a demo code included:
`omnichannel.demo.demo_locations`) are not the demo's: never counted.

Quantities are set with cycle counts (`stock_count_many`), so the ledger explains them and a
second run finds nothing to change. The warehouse holds the most; stores hold a few, with
some empty shelves and a few low ones, so the dashboards have something to show."""

import random
from collections.abc import Callable, Sequence
from datetime import datetime

from django.db import connection
from django.utils import timezone

from catalog.demo import demo_variant_ids
from omnichannel.bulk import copy_rows
from omnichannel.demo import demo_locations
from omnichannel.models import Location

from .availability import availability_rebuild
from .models import StockLevel, StockMovement
from .services import Count, stock_count_many

BATCH = 2000


def demo_quantity(rng: random.Random, location: Location) -> int:
    roll = rng.random()
    if location.kind == Location.Kind.WAREHOUSE:
        return 0 if roll < 0.03 else rng.randint(20, 200)
    if roll < 0.10:
        return 0
    if roll < 0.25:
        return rng.randint(1, 3)
    return rng.randint(4, 25)


def seed(*, rng: random.Random, progress: Callable[[int, int], None] | None = None) -> int:
    """Set demo stock at every demo location for every active demo variant; returns levels
    changed. A count sets a level whatever it held, so it must never reach a level of the
    retailer's own (their article in a demo store, a demo article in their store)."""
    locations = list(demo_locations().order_by("code"))
    variant_ids = demo_variant_ids()
    counts = [
        Count(variant_id, location.pk, demo_quantity(rng, location))
        for variant_id in variant_ids
        for location in locations
    ]
    changed = 0
    for start in range(0, len(counts), BATCH):
        changed += stock_count_many(counts=counts[start : start + BATCH], reference="demo-seed")
        if progress:
            progress(min(start + BATCH, len(counts)), len(counts))
    availability_rebuild()
    return changed


# (variant_id, location_id, delta, reserved_delta, reason, reference, created_at)
LedgerRow = tuple[int, int, int, int, str, str, datetime]
MOVEMENT_COLUMNS = (
    "variant_id",
    "location_id",
    "delta",
    "reserved_delta",
    "reason",
    "reference",
    "created_at",
    "note",
)


def bulk_ledger(rows: Sequence[LedgerRow]) -> int:
    """History for the bulk demo orders: write the ledger rows and move each stock level by
    their sum, in the caller's transaction, so the ledger still sums to every level."""
    net: dict[tuple[int, int], list[int]] = {}
    for variant_id, location_id, delta, reserved_delta, *_ in rows:
        total = net.setdefault((variant_id, location_id), [0, 0])
        total[0] += delta
        total[1] += reserved_delta
    copy_rows(StockMovement, MOVEMENT_COLUMNS, ((*row, "") for row in rows))
    changed = sorted(net.items())  # every touched level exists afterwards, as with services
    table = StockLevel._meta.db_table
    now = timezone.now()
    if connection.vendor != "postgresql":
        now = connection.ops.adapt_datetimefield_value(now)
    for start in range(0, len(changed), 4000):  # within every database's parameter limit
        chunk = changed[start : start + 4000]
        params = []
        for (variant_id, location_id), (delta, reserved_delta) in chunk:
            params += [variant_id, location_id, delta, reserved_delta, now]
        with connection.cursor() as cursor:  # one upsert per chunk, in the global lock order
            cursor.execute(
                f"INSERT INTO {table} (variant_id, location_id, on_hand, reserved, updated_at) "
                f"VALUES {', '.join(['(%s, %s, %s, %s, %s)'] * len(chunk))} "
                f"ON CONFLICT (variant_id, location_id) DO UPDATE SET "
                f"on_hand = {table}.on_hand + excluded.on_hand, "
                f"reserved = {table}.reserved + excluded.reserved, "
                f"updated_at = excluded.updated_at",
                params,
            )
    return len(rows)
