"""Points paid on an order, and points earned on it, when the order is cancelled, expires or
comes back: nothing kept that the member paid with, nothing taken back twice, and the balance
always the sum of the ledger. Also the nightly expiry racing a till and itself."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone

from customers.models import Member, PointsEntry
from customers.services import points_expire, points_redeem, points_restore
from inventory.services import StockLine, stock_receive
from orders.models import Order, Return
from orders.services import orders_expire_pickups
from tests.concurrency import require_postgres
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(web, pos, store):
    tee = VariantFactory(sku="TEE")
    cap = VariantFactory(sku="CAP")
    for channel in (web, pos):
        ChannelPriceFactory(variant=tee, channel=channel, amount=Decimal("20.00"))
        ChannelPriceFactory(variant=cap, channel=channel, amount=Decimal("1.70"))
    stock_receive(
        lines=[StockLine(tee.pk, store.pk, 50), StockLine(cap.pk, store.pk, 50)],
        reference="delivery",
    )
    _, storefront = make_api_client(web, name="storefront")
    _, till = make_api_client(pos, store, name="till")
    return {"web": as_client(storefront), "till": as_client(till)}


def place(client, member, sku="TEE", quantity=1, fulfillment="in_store", **extra):
    response = client.post(
        "/api/v1/orders/",
        {
            "fulfillment": fulfillment,
            "member": member,
            "lines": [{"sku": sku, "quantity": quantity}],
            **extra,
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def give_back(client, order, sku, quantity):
    response = client.post(
        "/api/v1/returns/",
        {
            "order": order["id"],
            "location": "lyon",
            "restock": True,
            "lines": [{"sku": sku, "quantity": quantity}],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def member_with_100_points(shop, phone):
    """Five tees in store (100.00) earn 100 points."""
    member_id = place(shop["till"], {"phone": phone}, quantity=5)["member"]
    assert Member.objects.get(pk=member_id).points == 100
    return member_id


def balance_is_its_ledger(member_id) -> int:
    points = Member.objects.get(pk=member_id).points
    assert points == sum(
        PointsEntry.objects.filter(member_id=member_id).values_list("points", flat=True)
    )
    return points


@pytest.mark.parametrize("how", ["cancel", "expire"])
def test_points_paid_on_an_order_never_handed_over_come_back_once(shop, how):
    member_id = member_with_100_points(shop, "0611111111")
    order = place(
        shop["web"],
        member_id,
        fulfillment="pickup",
        pickup_location="lyon",
        redeem_points=100,
        payments=[{"method": "card", "amount": "19.00"}],
    )
    assert balance_is_its_ledger(member_id) == 0
    if how == "cancel":
        assert shop["web"].post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 200
    else:  # nobody collected it: the hourly task expires it
        Order.objects.filter(pk=order["id"]).update(created_at=timezone.now() - timedelta(days=30))
        assert orders_expire_pickups() == 1
    assert balance_is_its_ledger(member_id) == 100
    # A retried task or a second call gives nothing more.
    assert points_restore(order=Order.objects.get(pk=order["id"])) == 0
    assert balance_is_its_ledger(member_id) == 100
    assert list(PointsEntry.objects.filter(order_id=order["id"]).values_list("kind", "points")) == [
        ("refunded", 100),
        ("redeemed", -100),
    ]


def test_cancelling_an_order_paid_without_points_posts_nothing(shop):
    member_id = member_with_100_points(shop, "0611111112")
    order = place(shop["web"], member_id, fulfillment="pickup", pickup_location="lyon")
    assert shop["web"].post(f"/api/v1/orders/{order['id']}/cancel/").status_code == 200
    assert not PointsEntry.objects.filter(order_id=order["id"]).exists()
    assert balance_is_its_ledger(member_id) == 100


def test_a_return_gives_the_points_part_back_as_points_not_money(shop):
    member_id = member_with_100_points(shop, "0622222222")
    # 20.00: 1.00 paid with 100 points, 19.00 by card; earns 19 points on the money.
    sale = place(
        shop["till"], member_id, redeem_points=100, payments=[{"method": "card", "amount": "19.00"}]
    )
    assert sale["points_earned"] == 19
    assert balance_is_its_ledger(member_id) == 19
    ret = give_back(shop["till"], sale, "TEE", 1)
    assert (ret["refund"], ret["points_refunded"], ret["points_reversed"]) == ("19.00", 100, 19)
    assert ret["lines"] == [{"sku": "TEE", "quantity": 1, "refund": "20.00"}]  # the goods' worth
    assert balance_is_its_ledger(member_id) == 100  # as before the sale


def test_returns_in_parts_of_an_order_paid_with_points_add_up_to_what_was_paid(shop):
    member_id = member_with_100_points(shop, "0633333333")
    # 3 x 20.00 = 60.00: 0.99 with 99 points, 59.01 by card.
    sale = place(
        shop["till"],
        member_id,
        quantity=3,
        redeem_points=99,
        payments=[{"method": "card", "amount": "59.01"}],
    )
    returns = [give_back(shop["till"], sale, "TEE", 1) for _ in range(3)]
    # Each third gives back a third of the points, rounded down; the last one the rest.
    assert [r["points_refunded"] for r in returns] == [33, 33, 33]
    assert sum(Decimal(r["refund"]) for r in returns) == Decimal("59.01")
    assert sum(r["points_reversed"] for r in returns) == sale["points_earned"] == 59
    assert balance_is_its_ledger(member_id) == 100  # the 99 back, the 59 earned taken back


@pytest.mark.parametrize(
    ("value_at_sale", "value_at_return", "redeem", "card"),
    [
        ("0.01", "0.01", 50, "4.60"),
        ("0.05", "0.05", 31, "3.55"),
        ("0.01", "0.05", 50, "4.60"),  # repriced between: points count at what they paid
    ],
)
def test_each_part_of_an_order_paid_partly_with_points_gives_back_what_the_goods_were_worth(
    shop, settings, value_at_sale, value_at_return, redeem, card
):
    """Money and points were split and rounded apart: the first cap of three (1.70, with 50
    points spent at 0.01) gave back 1.53 and 16 points, 1.69. Now the points' share comes
    back as points and the rest of the goods' worth as money, at every return."""
    settings.POINT_VALUE = value_at_sale
    member_id = member_with_100_points(shop, "0633333335")
    # 3 x 1.70 = 5.10: part paid with points, the rest by card.
    sale = place(
        shop["till"],
        member_id,
        sku="CAP",
        quantity=3,
        redeem_points=redeem,
        payments=[{"method": "card", "amount": card}],
    )
    settings.POINT_VALUE = value_at_return
    point = Decimal(value_at_sale)
    returns = [give_back(shop["till"], sale, "CAP", 1) for _ in range(3)]
    for ret in returns:
        assert ret["lines"] == [{"sku": "CAP", "quantity": 1, "refund": "1.70"}]
        assert Decimal(ret["refund"]) + ret["points_refunded"] * point == Decimal("1.70"), ret
    assert sum(Decimal(r["refund"]) for r in returns) == Decimal(card)
    assert sum(r["points_refunded"] for r in returns) == redeem
    balance_is_its_ledger(member_id)


def test_an_order_paid_wholly_with_points_comes_back_wholly_as_points(shop):
    member_id = place(shop["till"], {"phone": "0633333334"}, quantity=10)["member"]
    assert balance_is_its_ledger(member_id) == 200
    sale = place(shop["till"], member_id, sku="CAP", redeem_points=170)
    assert sale["points_earned"] == 0  # nothing paid in money
    ret = give_back(shop["till"], sale, "CAP", 1)
    assert (ret["refund"], ret["points_refunded"], ret["points_reversed"]) == ("0.00", 170, 0)
    assert Return.objects.get(pk=ret["id"]).refund == 0
    assert balance_is_its_ledger(member_id) == 200


def test_returns_in_parts_never_take_back_more_points_than_the_order_earned(shop):
    member_id = member_with_100_points(shop, "0644444444")
    sale = place(shop["till"], member_id, sku="CAP", quantity=3)
    assert sale["points_earned"] == 5  # 5.10 paid
    returns = [give_back(shop["till"], sale, "CAP", 1) for _ in range(3)]
    # Owed after each third: round(5/3)=2, round(10/3)=3, 5: so 2, 1, 2 (not 2 + 2 + 2).
    assert [r["points_reversed"] for r in returns] == [2, 1, 2]
    assert balance_is_its_ledger(member_id) == 100


def _member_with_old_and_recent_points() -> Member:
    member = Member.objects.create(phone="+33611111119", points=200)
    old = PointsEntry.objects.create(member=member, kind="earned", points=100)
    PointsEntry.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    PointsEntry.objects.create(member=member, kind="earned", points=100)
    return member


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_expiry_counts_points_spent_while_it_was_running(monkeypatch):
    """A till redeems 30 points after the expiry found the member, before it locks them:
    spending takes the oldest points first, so 70 old points are left to expire."""
    require_postgres()
    member = _member_with_old_and_recent_points()
    real = Member.objects.select_for_update
    fired = []

    def select_for_update(*args, **kwargs):
        if not fired:
            fired.append(True)

            def till():
                try:
                    points_redeem(member_id=member.pk, points=30, order=None)
                finally:
                    connections.close_all()

            thread = threading.Thread(target=till)
            thread.start()
            thread.join()
        return real(*args, **kwargs)

    monkeypatch.setattr(Member.objects, "select_for_update", select_for_update)
    assert points_expire() == 70
    assert balance_is_its_ledger(member.pk) == 100


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_expiry_runs_at_the_same_moment_expire_once(monkeypatch):
    """A redelivered task and `run_nightly` at once: both have found the member before
    either locks them."""
    require_postgres()
    member = _member_with_old_and_recent_points()
    real = Member.objects.select_for_update
    both_found = threading.Barrier(2)

    def select_for_update(*args, **kwargs):
        both_found.wait(timeout=10)
        return real(*args, **kwargs)

    monkeypatch.setattr(Member.objects, "select_for_update", select_for_update)
    results = []

    def run():
        try:
            results.append(points_expire())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 100]
    assert balance_is_its_ledger(member.pk) == 100


@pytest.mark.parametrize("point_value", ["0.01", "0.05"])
def test_random_orders_returned_in_random_parts_give_back_exactly_what_was_paid(
    pos, store, settings, point_value
):
    """Whatever a point is worth (POINT_VALUE): over many orders with several lines, a
    discount, part or all of it paid with points, and returns in random parts, the money
    given back adds up to the money paid, the points to the points spent, the earnings
    taken back to the points earned, and the balance is always its ledger. (At 0.05 a point,
    an order paid wholly with points paid out 0.05 in money and lost a point.)"""
    import random

    from orders.services import LineRequest, PaymentRequest, order_place, order_return

    settings.POINT_VALUE = point_value
    prices = {"A": "1.01", "B": "1.02", "C": "7.33", "D": "19.99", "E": "0.37"}
    for sku, price in prices.items():
        variant = VariantFactory(sku=sku)
        ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal(price))
        stock_receive(lines=[StockLine(variant.pk, store.pk, 10_000)], reference="d")
    member = Member.objects.create(email="many@example.com")
    PointsEntry.objects.create(member=member, kind="adjusted", points=1_000_000)
    Member.objects.filter(pk=member.pk).update(points=1_000_000)
    rng = random.Random(7)
    for _ in range(25):
        lines = [LineRequest(sku, rng.randint(1, 4)) for sku in rng.sample(sorted(prices), 3)]
        subtotal = sum(Decimal(prices[line.sku]) * line.quantity for line in lines)
        discount = Decimal(rng.randint(0, int(subtotal * 100) // 3)) / 100
        most = int((subtotal - discount) / Decimal(point_value))
        redeem = rng.choice([0, most, rng.randint(1, max(1, most))])
        card = subtotal - discount - (redeem * Decimal(point_value)).quantize(Decimal("0.01"))
        order = order_place(
            channel=pos,
            fulfillment="in_store",
            location=store,
            lines=lines,
            discount=discount,
            member=member,
            redeem_points=redeem,
            payments=[PaymentRequest("card", card)] if card else [],
        )
        left = {line.sku: line.quantity for line in lines}
        money_back, points_back, worth_back = Decimal(0), 0, Decimal(0)
        while any(left.values()):
            part = [
                LineRequest(sku, rng.randint(1, count))
                for sku, count in left.items()
                if count and rng.random() < 0.6
            ]
            for line in part:
                left[line.sku] -= line.quantity
            if part:
                ret = order_return(order_id=order.pk, location=store, lines=part, restock=True)
                money_back += ret.refund
                points_back += ret.points_refunded
                worth_back += sum(ret.lines.values_list("refund", flat=True))
                # At every step: no money taken, never more than was paid in money or in
                # points, and what came back is worth the goods within a point (a point
                # cannot be split; the next returns even it out).
                assert ret.refund >= 0 and money_back <= card, order.pk
                assert points_back <= redeem, order.pk
                given = money_back + points_back * Decimal(point_value)
                assert abs(given - worth_back) < Decimal(point_value), (order.pk, given)
        returns = Return.objects.filter(order=order)
        assert sum(r.refund for r in returns) == card, order.pk
        assert all(r.refund >= 0 for r in returns)
        assert sum(r.points_refunded for r in returns) == redeem
        taken = -sum(
            PointsEntry.objects.filter(order=order, kind="reversed").values_list(
                "points", flat=True
            )
        )
        order.refresh_from_db()
        assert taken == order.points_earned
        balance_is_its_ledger(member.pk)
