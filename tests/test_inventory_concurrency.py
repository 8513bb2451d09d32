"""Real threads against real PostgreSQL: the last units are sold once, and nothing deadlocks."""

import random

import pytest

from inventory.models import StockLevel
from inventory.services import (
    InsufficientStock,
    StockLine,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_sell_now,
)
from tests.concurrency import require_postgres, run_in_threads
from tests.factories import LocationFactory, VariantFactory
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _needs_postgres():
    require_postgres()


def test_fifty_tills_and_the_web_take_the_last_ten_units_exactly_once():
    variant, location = VariantFactory(), LocationFactory()
    stock_receive(lines=[StockLine(variant.pk, location.pk, 10)], reference="delivery")

    def take_one(i):
        try:
            if i % 2:
                stock_reserve(lines=[StockLine(variant.pk, location.pk, 1)], reference=f"web:{i}")
            else:
                stock_sell_now(lines=[StockLine(variant.pk, location.pk, 1)], reference=f"pos:{i}")
            return "ok"
        except InsufficientStock as refused:
            assert refused.status_code == 409
            return "refused"

    outcomes = run_in_threads(50, take_one)
    assert outcomes.count("ok") == 10
    assert outcomes.count("refused") == 40
    level = StockLevel.objects.get(variant=variant, location=location)
    assert level.on_hand >= 0 and level.reserved >= 0
    assert level.available == 0
    assert_ledger_matches_levels()


def test_multi_line_operations_in_opposite_order_never_deadlock():
    location = LocationFactory()
    variants = [VariantFactory() for _ in range(4)]
    stock_receive(
        lines=[StockLine(v.pk, location.pk, 1000) for v in variants], reference="delivery"
    )
    rounds = 15

    def shuffle_and_hold(i):
        rng = random.Random(i)
        for n in range(rounds):
            order = variants if (i + n) % 2 else list(reversed(variants))
            lines = [StockLine(v.pk, location.pk, rng.randint(1, 3)) for v in order]
            stock_reserve(lines=lines, reference=f"t{i}:{n}")
            stock_release(lines=list(reversed(lines)), reference=f"t{i}:{n}")
        return "done"

    assert run_in_threads(16, shuffle_and_hold) == ["done"] * 16
    for level in StockLevel.objects.filter(location=location):
        assert (level.on_hand, level.reserved) == (1000, 0)
    assert_ledger_matches_levels()


def test_receipts_creating_new_rows_race_with_reservations_without_deadlock():
    """Upserts that create stock rows take their locks in the same global order."""
    locations = [LocationFactory() for _ in range(3)]
    variants = [VariantFactory() for _ in range(3)]
    stock_receive(lines=[StockLine(variants[0].pk, locations[0].pk, 100)], reference="seed")

    def work(i):
        pairs = [(v, loc) for v in variants for loc in locations]
        if i % 2:
            pairs.reverse()
        if i % 3 == 0:
            stock_reserve(lines=[StockLine(variants[0].pk, locations[0].pk, 1)], reference=f"r{i}")
        stock_receive(lines=[StockLine(v.pk, loc.pk, 1) for v, loc in pairs], reference=f"g{i}")
        return "done"

    assert run_in_threads(12, work) == ["done"] * 12
    assert StockLevel.objects.count() == 9
    assert StockLevel.objects.get(variant=variants[0], location=locations[0]).on_hand == 112
    assert_ledger_matches_levels()
