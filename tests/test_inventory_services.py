"""Stock rules: reserve, release, commit, sell now, receive, adjust, count; the ledger."""

import pytest
from django.db import DatabaseError, connection, transaction

import omnichannel.demo
from inventory.models import StockLevel, StockMovement
from inventory.services import (
    InsufficientStock,
    InvalidQuantity,
    NegativeStock,
    NotReserved,
    StockLine,
    stock_adjust,
    stock_commit,
    stock_count,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_reserve_routed,
    stock_sell_now,
)
from omnichannel.models import Location
from tests.factories import LocationFactory, ProductFactory, VariantFactory
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def shelf():
    """One variant with 10 units on hand at one store."""
    variant, location = VariantFactory(sku="TEE-M"), LocationFactory(code="lyon")
    stock_receive(lines=[StockLine(variant.pk, location.pk, 10)], reference="seed")
    return variant, location


def level(variant, location):
    return StockLevel.objects.get(variant=variant, location=location)


def test_reserve_then_commit_moves_goods_out_and_the_ledger_follows(shelf):
    variant, location = shelf
    stock_reserve(lines=[StockLine(variant.pk, location.pk, 3)], reference="order:1")
    row = level(variant, location)
    assert (row.on_hand, row.reserved, row.available) == (10, 3, 7)
    stock_commit(lines=[StockLine(variant.pk, location.pk, 3)], reference="order:1")
    row = level(variant, location)
    assert (row.on_hand, row.reserved) == (7, 0)
    reasons = list(StockMovement.objects.values_list("reason", "delta", "reserved_delta"))
    assert reasons == [("receipt", 10, 0), ("reservation", 0, 3), ("sale", -3, -3)]
    assert_ledger_matches_levels()


def test_release_gives_reserved_units_back(shelf):
    variant, location = shelf
    line = StockLine(variant.pk, location.pk, 4)
    stock_reserve(lines=[line], reference="order:2")
    stock_release(lines=[line], reference="order:2")
    assert level(variant, location).reserved == 0
    with pytest.raises(NotReserved):
        stock_release(lines=[line], reference="order:2")  # released twice
    assert_ledger_matches_levels()


def test_reserving_more_than_available_is_refused_with_sku_location_and_available(shelf):
    variant, location = shelf
    stock_reserve(lines=[StockLine(variant.pk, location.pk, 8)], reference="order:1")
    with pytest.raises(InsufficientStock) as refused:
        stock_reserve(lines=[StockLine(variant.pk, location.pk, 3)], reference="order:2")
    assert refused.value.extra == {"sku": "TEE-M", "location": "lyon", "available": 2}
    assert level(variant, location).reserved == 8


def test_a_multi_line_reservation_is_all_or_nothing(shelf):
    variant, location = shelf
    other = VariantFactory()
    with pytest.raises(InsufficientStock) as refused:
        stock_reserve(
            lines=[StockLine(variant.pk, location.pk, 2), StockLine(other.pk, location.pk, 1)],
            reference="order:3",
        )
    assert refused.value.extra["sku"] == other.sku
    assert refused.value.extra["available"] == 0
    assert level(variant, location).reserved == 0
    assert StockMovement.objects.filter(reason="reservation").count() == 0


def test_lines_for_the_same_sku_are_added_up_before_checking(shelf):
    variant, location = shelf
    with pytest.raises(InsufficientStock):
        stock_reserve(
            lines=[StockLine(variant.pk, location.pk, 6), StockLine(variant.pk, location.pk, 5)],
            reference="order:4",
        )
    stock_reserve(
        lines=[StockLine(variant.pk, location.pk, 6), StockLine(variant.pk, location.pk, 4)],
        reference="order:5",
    )
    assert level(variant, location).available == 0


@pytest.mark.parametrize("quantity", [0, -1, 1.5, True, "2", 10**9])
def test_quantities_must_be_positive_whole_numbers(shelf, quantity):
    variant, location = shelf
    with pytest.raises(InvalidQuantity):
        stock_reserve(lines=[StockLine(variant.pk, location.pk, quantity)], reference="x")
    assert level(variant, location).reserved == 0


def test_sell_now_refuses_an_oversell_unless_the_goods_already_left(shelf):
    variant, location = shelf
    with pytest.raises(InsufficientStock):
        stock_sell_now(lines=[StockLine(variant.pk, location.pk, 11)], reference="pos:1")
    _, oversold = stock_sell_now(
        lines=[StockLine(variant.pk, location.pk, 11)],
        reference="pos:offline-1",
        allow_oversell=True,
    )
    assert oversold == [(variant.pk, location.pk)]
    assert level(variant, location).on_hand == -1
    assert_ledger_matches_levels()


def test_offline_sale_at_a_location_that_never_had_the_sku_goes_negative(shelf):
    variant, _ = shelf
    elsewhere = LocationFactory(code="paris")
    _, oversold = stock_sell_now(
        lines=[StockLine(variant.pk, elsewhere.pk, 1)],
        reference="pos:offline-2",
        allow_oversell=True,
    )
    assert oversold and level(variant, elsewhere).on_hand == -1
    assert_ledger_matches_levels()


def test_adjustments_record_reason_and_note_and_cannot_go_below_zero(shelf):
    variant, location = shelf
    stock_adjust(
        variant_id=variant.pk, location_id=location.pk, delta=-2, reason="damage", note="wet box"
    )
    assert level(variant, location).on_hand == 8
    movement = StockMovement.objects.latest("id")
    assert (movement.reason, movement.delta, movement.note) == ("damage", -2, "wet box")
    with pytest.raises(NegativeStock):
        stock_adjust(variant_id=variant.pk, location_id=location.pk, delta=-9, reason="theft")
    assert level(variant, location).on_hand == 8
    assert_ledger_matches_levels()


def test_a_cycle_count_sets_on_hand_and_the_ledger_gets_the_difference(shelf):
    variant, location = shelf
    stock_reserve(lines=[StockLine(variant.pk, location.pk, 2)], reference="order:9")
    stock_count(variant_id=variant.pk, location_id=location.pk, counted=7)
    row = level(variant, location)
    assert (row.on_hand, row.reserved) == (7, 2)
    movement = StockMovement.objects.latest("id")
    assert (movement.reason, movement.delta) == ("count", -3)
    before = StockMovement.objects.count()
    stock_count(variant_id=variant.pk, location_id=location.pk, counted=7)  # nothing changed
    assert StockMovement.objects.count() == before
    assert_ledger_matches_levels()


def test_counting_a_new_location_creates_its_stock_row(shelf):
    variant, _ = shelf
    warehouse = LocationFactory(code="wh", kind="warehouse")
    stock_count(variant_id=variant.pk, location_id=warehouse.pk, counted=5)
    assert level(variant, warehouse).on_hand == 5
    assert_ledger_matches_levels()


def test_the_database_refuses_to_change_or_delete_ledger_rows(shelf):
    movement = StockMovement.objects.first()
    with pytest.raises(DatabaseError), transaction.atomic():
        StockMovement.objects.filter(pk=movement.pk).update(delta=999)
    if connection.vendor == "postgresql":
        with pytest.raises(DatabaseError), transaction.atomic():
            StockMovement.objects.filter(pk=movement.pk).delete()
    assert StockMovement.objects.get(pk=movement.pk).delta == 10


def test_the_database_refuses_a_negative_reservation(shelf):
    variant, location = shelf
    with pytest.raises(DatabaseError), transaction.atomic():
        StockLevel.objects.filter(variant=variant, location=location).update(reserved=-1)


def test_count_many_sets_levels_once_and_a_second_run_changes_nothing(shelf):
    from inventory.services import Count, stock_count_many

    variant, location = shelf
    other = VariantFactory()
    warehouse = LocationFactory(code="wh", kind="warehouse")
    counts = [
        Count(variant.pk, location.pk, 4),
        Count(other.pk, warehouse.pk, 9),
        Count(other.pk, location.pk, 0),
    ]
    assert stock_count_many(counts=counts) == 2  # (other, lyon) was already 0
    assert level(variant, location).on_hand == 4
    assert level(other, warehouse).on_hand == 9
    before = StockMovement.objects.count()
    assert stock_count_many(counts=counts) == 0
    assert StockMovement.objects.count() == before
    with pytest.raises(InvalidQuantity):
        stock_count_many(counts=[Count(variant.pk, location.pk, -1)])
    assert_ledger_matches_levels()


def test_demo_stock_is_idempotent_and_counts_only_the_demo_articles_at_demo_locations(shelf):
    """The demo's variants (`P00001-M`) at the demo's locations; the shelf's TEE-M at lyon,
    a variant staff added to a demo product, and the demo's articles at the retailer's own
    lyon are theirs: not counted. So is a shop's own store coded `bordeaux` (not at the
    demo's address)."""
    import random

    from inventory import demo

    staff_variant, staff_store = shelf
    demo_variants = [
        VariantFactory(product=ProductFactory(code=f"P{n:05d}"), sku=f"P{n:05d}-M")
        for n in range(1, 6)
    ]
    staff_added = VariantFactory(product=demo_variants[0].product, sku="EXTRA-1")
    for spec in omnichannel.demo.LOCATIONS[:2]:  # wh-central, lyon-centre, as the seed makes them
        Location.objects.create(**spec)
    own_bordeaux = LocationFactory(code="bordeaux")  # a shop's own store of a demo code
    stock_receive(lines=[StockLine(demo_variants[0].pk, staff_store.pk, 4)], reference="po:1")
    demo.seed(rng=random.Random(7))
    snapshot = list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved"))
    movements = StockMovement.objects.count()
    assert StockLevel.objects.filter(location__code__in=["wh-central", "lyon-centre"]).count() == (
        5 * 2
    )
    assert set(
        StockLevel.objects.filter(location=staff_store).values_list("variant__sku", "on_hand")
    ) == {(staff_variant.sku, 10), (demo_variants[0].sku, 4)}
    assert not StockLevel.objects.filter(location=own_bordeaux).exists()
    assert (
        not StockLevel.objects.filter(variant__in=[staff_variant, staff_added])
        .exclude(location=staff_store)
        .exists()
    )
    demo.seed(rng=random.Random(7))
    assert list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved")) == snapshot
    assert StockMovement.objects.count() == movements
    assert_ledger_matches_levels()


def test_reserve_keeps_the_safety_stock_it_is_told_to_keep(shelf):
    variant, location = shelf
    key = (variant.pk, location.pk)
    with pytest.raises(InsufficientStock) as refused:
        stock_reserve(lines=[StockLine(*key, 9)], reference="web:1", keep={key: 2})
    assert refused.value.extra["available"] == 8
    stock_reserve(lines=[StockLine(*key, 8)], reference="web:2", keep={key: 2})
    assert level(variant, location).available == 2


def test_a_routed_reservation_decides_from_the_locked_rows_with_the_keep_held_back():
    """stock_reserve_routed hands the route what each location may give (its available
    minus what is held back there; no row: absent) and reserves exactly what it returns."""
    variant = VariantFactory(sku="TEE-M")
    lyon, paris, empty = (LocationFactory(code=c) for c in ("lyon", "paris", "empty"))
    stock_receive(lines=[StockLine(variant.pk, lyon.pk, 10)], reference="seed")
    stock_receive(lines=[StockLine(variant.pk, paris.pk, 1)], reference="seed")
    stock_reserve(lines=[StockLine(variant.pk, lyon.pk, 3)], reference="order:1")
    seen = []

    def route(sellable):
        seen.append(sellable)
        return [StockLine(variant.pk, lyon.pk, 4), StockLine(variant.pk, lyon.pk, 1)]

    lines = stock_reserve_routed(
        variant_ids=[variant.pk],
        keep={lyon.pk: 2, paris.pk: 5, empty.pk: 0},
        route=route,
        reference="order:2",
    )
    # lyon: 10 on hand - 3 reserved - 2 kept; paris: 1 - 5 kept is nothing, not negative.
    assert seen == [{(variant.pk, lyon.pk): 5, (variant.pk, paris.pk): 0}]
    assert [line.quantity for line in lines] == [4, 1]
    assert (level(variant, lyon).on_hand, level(variant, lyon).reserved) == (10, 8)
    movement = StockMovement.objects.get(reference="order:2")
    assert (movement.reserved_delta, movement.reason) == (5, "reservation")
    assert_ledger_matches_levels()


@pytest.mark.parametrize(
    "overreach", ["more than sellable", "a location not offered", "the kept units"]
)
def test_a_route_that_overreaches_is_refused_and_nothing_is_written(overreach):
    variant = VariantFactory(sku="TEE-M")
    lyon, paris = LocationFactory(code="lyon"), LocationFactory(code="paris")
    stock_receive(lines=[StockLine(variant.pk, lyon.pk, 5)], reference="seed")
    stock_receive(lines=[StockLine(variant.pk, paris.pk, 5)], reference="seed")
    chosen = {
        "more than sellable": StockLine(variant.pk, lyon.pk, 6),
        "a location not offered": StockLine(variant.pk, paris.pk, 1),
        "the kept units": StockLine(variant.pk, lyon.pk, 5),
    }[overreach]
    keep = {lyon.pk: 1 if overreach == "the kept units" else 0}
    before = StockMovement.objects.count()
    with pytest.raises(InsufficientStock) as refused, transaction.atomic():  # the caller's
        stock_reserve_routed(
            variant_ids=[variant.pk], keep=keep, route=lambda s: [chosen], reference="order:9"
        )
    assert refused.value.code == "insufficient_stock"
    offered = {"more than sellable": 5, "a location not offered": 0, "the kept units": 4}
    assert refused.value.extra["available"] == offered[overreach]
    assert StockMovement.objects.count() == before
    assert level(variant, lyon).reserved == level(variant, paris).reserved == 0


def test_what_the_route_raises_leaves_the_enclosing_transaction_to_roll_back():
    """No savepoint of its own: a route's error spoils the caller's transaction, which
    must end (an order placement does: it fails as a whole)."""
    variant, lyon = VariantFactory(sku="TEE-M"), LocationFactory(code="lyon")
    stock_receive(lines=[StockLine(variant.pk, lyon.pk, 5)], reference="seed")

    class NoRoute(Exception):
        pass

    def route(sellable):
        raise NoRoute

    with pytest.raises(NoRoute), transaction.atomic():
        stock_receive(lines=[StockLine(variant.pk, lyon.pk, 1)], reference="delivery:2")
        stock_reserve_routed(
            variant_ids=[variant.pk], keep={lyon.pk: 0}, route=route, reference="order:1"
        )
    assert not StockMovement.objects.filter(reference="delivery:2").exists()
    assert (level(variant, lyon).on_hand, level(variant, lyon).reserved) == (5, 0)
    assert_ledger_matches_levels()
