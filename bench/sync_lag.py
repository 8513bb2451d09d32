"""Sync lag: from a committed POS sale to the web channel's published availability, with a
real Celery worker process consuming from Redis."""

import os
import time

from .common import celery_worker, percentiles

SALES = int(os.environ.get("BENCH_SALES", "100"))


def sell_one(variant_id: int, location_id: int, *, reference: str) -> float:
    """A one-unit POS sale; returns when it committed (time.perf_counter()). Stamped by the
    transaction's first after-commit hook, registered before the sale registers its own
    (the worker's wake-up: a Redis flag and a Celery publish), so the lag counts from the
    commit, the wake-up included."""
    from django.db import transaction

    from inventory.services import StockLine, stock_sell_now

    committed = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.perf_counter()))
        stock_sell_now(lines=[StockLine(variant_id, location_id, 1)], reference=reference)
    return committed[0]


def run() -> dict:
    from catalog.models import Product, Variant
    from inventory.models import AvailabilityOutbox, ChannelAvailability, StockLevel
    from inventory.services import stock_count
    from omnichannel.models import Channel, ChannelLocation, Location

    web, _ = Channel.objects.get_or_create(
        code="bench-web", defaults={"name": "Bench web", "kind": "web", "currency": "EUR"}
    )
    store = Location.objects.get(code="bench-store")
    ChannelLocation.objects.get_or_create(channel=web, location=store)
    product = Product.objects.get(code="BENCH")
    variant, _ = Variant.objects.get_or_create(product=product, sku="BENCH-LAG")
    # A count sets on_hand exactly; what earlier runs left reserved stays reserved.
    level = StockLevel.objects.filter(variant=variant, location=store).first()
    reserved = level.reserved if level else 0
    stock_count(variant_id=variant.pk, location_id=store.pk, counted=SALES + 10 + reserved)

    with celery_worker():

        def published():
            row = ChannelAvailability.objects.filter(channel=web, variant=variant).first()
            return row.available if row else None

        # The worker is up and has caught up: this variant published, and nothing left in
        # the outbox (orders placed with no worker running, by other benches or a profile,
        # leave a backlog whose draining would show up as lag here: 3.2 s p99 once).
        deadline = time.monotonic() + 120
        while published() != SALES + 10 or AvailabilityOutbox.objects.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not catch up within 120 s")
            time.sleep(0.05)
        lags = []
        for n in range(SALES):
            expected = SALES + 10 - n - 1
            committed = sell_one(variant.pk, store.pk, reference=f"bench:{n}")
            while published() != expected:
                if time.perf_counter() - committed > 10:
                    raise RuntimeError("sync did not arrive within 10 s")
                time.sleep(0.0005)
            lags.append(time.perf_counter() - committed)
    return {"sales": SALES, **percentiles(lags)}
