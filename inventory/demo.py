"""Demo stock for `seed_demo`: every location holds a plausible quantity of each variant.

Quantities are set with cycle counts (`stock_count_many`), so the ledger explains them and a
second run finds nothing to change. The warehouse holds the most; stores hold a few, with
some empty shelves and a few low ones, so the dashboards have something to show."""

import random
from collections.abc import Callable

from catalog.models import Variant
from omnichannel.models import Location

from .availability import availability_rebuild
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
    """Set demo stock at every location for every active variant; returns levels changed."""
    locations = list(Location.objects.order_by("code"))
    variant_ids = list(
        Variant.objects.filter(is_active=True).order_by("sku").values_list("id", flat=True)
    )
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
