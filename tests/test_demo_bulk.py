"""The bulk demo history (`seed_demo --size large`): written in bulk, yet every ledger, total
and balance holds as if the services had written it, and a re-run or a resumed run adds
nothing twice."""

import random
from collections import Counter, defaultdict
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, F, Sum
from django.test import override_settings

import catalog.demo
import omnichannel.demo
import orders.demo
from analytics.models import NightlyRun
from catalog.models import Category, ChannelPrice, Product, Variant
from customers.models import Member, MemberChannel, PointsEntry
from customers.services import normalize_email, normalize_phone
from inventory.models import StockMovement
from inventory.services import StockLine, stock_receive
from omnichannel.bulk import copy_rows
from omnichannel.models import Channel, ChannelLocation, Location
from orders import demo_bulk
from orders.models import Allocation, Order, OrderLine, Payment, Return, ReturnLine
from orders.services import LineRequest, order_place, order_transition
from tests.concurrency import require_postgres
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db

ORDERS, PEOPLE, BATCH = 900, 120, 300


@pytest.fixture
def network():
    omnichannel.demo.seed()
    catalog.demo.seed(size="small", rng=random.Random("bulk-test"))


def movements_by_order() -> dict[int, list[tuple]]:
    pattern = defaultdict(list)
    for reference, reason, delta, reserved_delta in (
        StockMovement.objects.filter(reference__startswith="order:")
        .order_by("id")
        .values_list("reference", "reason", "delta", "reserved_delta")
    ):
        pattern[int(reference.split(":")[1])].append((reason, delta, reserved_delta))
    return pattern


def test_bulk_history_keeps_every_ledger_total_and_balance(network):
    added = demo_bulk.seed_bulk(orders=ORDERS, people=PEOPLE, seed="t", batch=BATCH)
    assert added == ORDERS == Order.objects.filter(client_id__startswith="bulk-").count()

    # Stock: the ledger sums to every level, and each order moved stock the way the services
    # move it for its fulfillment and fate.
    assert_ledger_matches_levels()
    patterns = movements_by_order()
    lines = defaultdict(list)
    for order_id, quantity in OrderLine.objects.values_list("order_id", "quantity"):
        lines[order_id].append(quantity)
    shapes = Counter()
    for order in Order.objects.all():
        reasons = [reason for reason, _, _ in patterns[order.pk]]
        n = len(lines[order.pk])
        expected = {
            "completed": ["sale"] * n,
            "shipped": ["reservation"] * n + ["sale"] * n,
            "picked_up": ["reservation"] * n + ["sale"] * n,
            "cancelled": ["reservation"] * n + ["release"] * n,
        }[order.status]
        assert sorted(reasons) == sorted(expected), (order.status, reasons)
        shapes[(order.fulfillment, order.status)] += 1
    assert {"in_store", "ship", "pickup"} == {fulfillment for fulfillment, _ in shapes}
    assert shapes[("ship", "cancelled")] + shapes[("pickup", "cancelled")] > 0

    # Money: lines add up to the order, payments to the total (none on a cancelled order),
    # allocations to each line's quantity, refunds to what the returned unit was paid.
    line_sums = dict(
        OrderLine.objects.values("order_id")
        .annotate(s=Sum("line_total"))
        .values_list("order_id", "s")
    )
    paid = dict(
        Payment.objects.values("order_id").annotate(s=Sum("amount")).values_list("order_id", "s")
    )
    for order_id, status, subtotal, total in Order.objects.values_list(
        "pk", "status", "subtotal", "total"
    ):
        assert subtotal == total == line_sums[order_id]
        assert paid.get(order_id) == (None if status == "cancelled" else total)
    assert not OrderLine.objects.exclude(line_total=F("unit_price") * F("quantity")).exists()
    allocated = dict(
        Allocation.objects.values("line_id").annotate(q=Sum("quantity")).values_list("line_id", "q")
    )
    assert allocated == dict(OrderLine.objects.values_list("pk", "quantity"))
    assert Return.objects.exists()
    for ret in Return.objects.prefetch_related("lines__line"):
        [line] = ret.lines.all()
        assert ret.refund == line.refund == line.line.unit_price and line.quantity == 1
        assert ret.order.status != "cancelled"
        restocked = StockMovement.objects.filter(reference=f"return:{ret.pk}", reason="return")
        assert restocked.count() == (1 if ret.restock else 0)

    # Members: normalized contacts, created at their first order, seen where they shopped;
    # points earned once per handed-over order, and the ledger sums to every balance.
    members = Member.objects.filter(phone__startswith=demo_bulk.PHONE_PREFIX)
    assert 0 < members.count() <= PEOPLE
    for member in members:
        assert normalize_phone(member.phone) == member.phone
        assert member.email is None or normalize_email(member.email) == member.email
        first = member.orders.order_by("created_at").first()
        assert first is not None and member.created_at == first.created_at
    balances = dict(
        PointsEntry.objects.values("member_id")
        .annotate(s=Sum("points"))
        .values_list("member_id", "s")
    )
    for member_id, points in Member.objects.values_list("pk", "points"):
        assert points == balances.get(member_id, 0) >= 0
    earned = Order.objects.filter(member__isnull=False).exclude(status="cancelled")
    assert (
        PointsEntry.objects.filter(kind="earned").count()
        == earned.filter(points_earned__gt=0).count()
    )
    assert not Order.objects.filter(status="cancelled", points_earned__gt=0).exists()
    for order in Order.objects.filter(member__isnull=False).select_related("channel")[:200]:
        place = (
            None if order.fulfillment == "ship" else order.location_id or order.pickup_location_id
        )
        assert MemberChannel.objects.filter(
            member_id=order.member_id, channel=order.channel, location_id=place
        ).exists()

    # Numbers are per channel and unique; dates run over the year in key order.
    numbers = list(Order.objects.values_list("channel__code", "number", "pk"))
    assert all(number == f"{code.upper()}-{pk:06d}" for code, number, pk in numbers)
    dates = list(Order.objects.order_by("client_id").values_list("created_at", flat=True))
    assert dates == sorted(dates)
    assert (dates[-1] - dates[0]).days >= 300


def test_bulk_history_sells_only_the_demo_articles_from_the_demo_locations(network):
    """The retailer's own article, priced in the demo's channels (the cheapest there), and
    their own store feeding both first: a million bulk orders must not be sales of real
    goods, nor stock moved at a real shop."""
    shop = Location.objects.create(code="nantes", name="Nantes", kind="store", ships=True)
    shop.pickup = True
    shop.save()
    product = Product.objects.create(
        code="ACME-1", name="Acme tee", category=Category.objects.create(name="Own", slug="own")
    )
    variant = Variant.objects.create(product=product, sku="ACME-1-M", barcode="4006381333931")
    for channel in Channel.objects.all():
        ChannelPrice.objects.create(variant=variant, channel=channel, amount=Decimal("0.50"))
        ChannelLocation.objects.filter(channel=channel).update(priority=F("priority") + 1)
        ChannelLocation.objects.create(channel=channel, location=shop, priority=1)
    demo_bulk.seed_bulk(orders=ORDERS, people=PEOPLE, seed="t", batch=BATCH)
    assert not OrderLine.objects.filter(variant=variant).exists()
    assert not Order.objects.filter(location=shop).exists()
    assert not Order.objects.filter(pickup_location=shop).exists()
    assert not Allocation.objects.filter(location=shop).exists()
    assert not StockMovement.objects.filter(location=shop).exists()
    assert not StockMovement.objects.filter(variant=variant).exists()


def test_the_ledger_patterns_match_what_the_services_write(network):
    """The bulk rows imitate the services: a shipped and a cancelled web order placed
    through the real services move stock with the same reasons and signs."""
    web = Channel.objects.get(code="web")
    warehouse = ChannelLocation.objects.filter(channel=web).order_by("priority")[0].location_id
    variant_id, sku = ChannelPrice.objects.filter(channel=web, published=True).values_list(
        "variant_id", "variant__sku"
    )[0]
    stock_receive(lines=[StockLine(variant_id, warehouse, 10)], reference="test")
    shipped = order_place(channel=web, fulfillment="ship", lines=[LineRequest(sku, 2)])
    order_transition(order_id=shipped.pk, action="ship")
    cancelled = order_place(channel=web, fulfillment="ship", lines=[LineRequest(sku, 1)])
    order_transition(order_id=cancelled.pk, action="cancel")
    patterns = movements_by_order()
    assert patterns[shipped.pk] == [("reservation", 0, 2), ("sale", -2, -2)]
    assert patterns[cancelled.pk] == [("reservation", 0, 1), ("release", 0, -1)]

    demo_bulk.seed_bulk(orders=300, people=40, seed="s", batch=300)
    bulk = movements_by_order()
    for order in Order.objects.filter(client_id__startswith="bulk-", fulfillment="ship"):
        signs = [(reason, d < 0, r > 0, r < 0) for reason, d, r in bulk[order.pk]]
        if order.status == "shipped":
            assert set(signs) == {("reservation", False, True, False), ("sale", True, False, True)}
        else:
            assert set(signs) == {
                ("reservation", False, True, False),
                ("release", False, False, True),
            }


def test_a_second_run_adds_nothing_and_an_interrupted_run_resumes(network, monkeypatch):
    calls = {"n": 0}
    real = demo_bulk.bulk_points

    def fail_on_second_batch(rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("power cut")
        return real(rows)

    monkeypatch.setattr(demo_bulk, "bulk_points", fail_on_second_batch)
    with pytest.raises(RuntimeError, match="power cut"):
        demo_bulk.seed_bulk(orders=ORDERS, people=PEOPLE, seed="t", batch=BATCH)
    # The first batch stands whole; the interrupted one left nothing behind.
    assert Order.objects.filter(client_id__startswith="bulk-").count() == BATCH
    assert_ledger_matches_levels()
    assert not OrderLine.objects.filter(order__isnull=True).exists()
    member_count = Member.objects.count()
    assert member_count == len(
        set(Order.objects.filter(member__isnull=False).values_list("member_id", flat=True))
    )

    monkeypatch.setattr(demo_bulk, "bulk_points", real)
    assert demo_bulk.seed_bulk(orders=ORDERS, people=PEOPLE, seed="t", batch=BATCH) == 600
    keys = list(Order.objects.order_by("client_id").values_list("client_id", flat=True))
    assert keys == [f"bulk-{n:07d}" for n in range(ORDERS)]
    # A shopper who came back after the cut is still one member.
    assert not Member.objects.values("phone").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert Member.objects.filter(orders__isnull=True).count() == 0
    assert_ledger_matches_levels()

    tables = (Order, OrderLine, Member, MemberChannel, PointsEntry, StockMovement, ReturnLine)
    before = [model.objects.count() for model in tables]
    assert demo_bulk.seed_bulk(orders=ORDERS, people=PEOPLE, seed="t", batch=BATCH) == 0
    assert [model.objects.count() for model in tables] == before


def test_the_plan_is_the_same_every_time_and_follows_the_shoppers_processes():
    one = demo_bulk.make_plan(orders=20_000, people=2_000, seed="p", stores=3)
    two = demo_bulk.make_plan(orders=20_000, people=2_000, seed="p", stores=3)
    assert (one.days == two.days).all() and (one.person == two.person).all()
    assert len(one.days) == 20_000 and (one.days[:-1] <= one.days[1:]).all()
    members = one.person[one.person >= 0]
    assert 0.45 < len(members) / 20_000 <= 0.7  # the rest are anonymous sales
    per_person = Counter(members.tolist())
    assert max(per_person.values()) > 5 and min(per_person.values()) == 1  # loyal and one-off
    other = demo_bulk.make_plan(orders=20_000, people=2_000, seed="q", stores=3)
    assert not (other.days == one.days).all()


def planner_row_estimate(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples FROM pg_class WHERE relname = %s", [table])
        return cursor.fetchone()[0]


def test_after_a_bulk_load_the_planner_knows_the_tables_are_full(network):
    """Straight after COPY the planner would take the tables for empty (measured: an
    order-list prefetch at 0.2-0.5 s instead of 1 ms) until autovacuum came by."""
    require_postgres()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")
    assert planner_row_estimate("orders_order") == 0
    demo_bulk.seed_bulk(orders=ORDERS, people=PEOPLE, seed="t", batch=BATCH)
    assert planner_row_estimate("orders_order") == ORDERS


@pytest.mark.parametrize("use_copy", [True, False])
def test_rows_land_exactly_by_copy_and_by_insert(network, use_copy):
    """COPY on PostgreSQL, plain INSERTs on SQLite: awkward text (tabs, new lines,
    backslashes, quotes, accents, empty strings) and NULLs arrive as they were."""
    if use_copy:
        require_postgres()
    awkward = ["tab\there", "line\nbreak\r", "back\\slash \\N", "quote'\"", "Chloé ☕", ""]
    order = Order.objects.create(
        channel=Channel.objects.get(code="web"),
        fulfillment="ship",
        status="placed",
        currency="EUR",
        subtotal=Decimal("1.00"),
        total=Decimal("1.00"),
    )
    variant_id = Variant.objects.values_list("pk", flat=True)[0]
    rows = [
        (order.pk, variant_id, f"SKU-{n}", text, Decimal("1.25"), 1, Decimal("1.25"), Decimal("0"))
        for n, text in enumerate(awkward)
    ]
    columns = (
        "order_id",
        "variant_id",
        "sku",
        "name",
        "unit_price",
        "quantity",
        "line_total",
        "discount",
    )
    assert copy_rows(OrderLine, columns, rows, use_copy=use_copy) == len(rows)
    assert list(order.lines.order_by("sku").values_list("name", flat=True)) == awkward


def test_seed_demo_large_adds_the_bulk_history_once(monkeypatch):
    """The command's large size, scaled down: services' orders, then the bulk history, then
    the stock counts and the nightly run; a second run adds nothing."""
    monkeypatch.setitem(catalog.demo.SIZES, "large", 120)
    monkeypatch.setitem(orders.demo.SIZES, "large", 40)
    monkeypatch.setitem(demo_bulk.SIZES, "large", (600, 80))

    def seed_large() -> str:
        err = StringIO()
        with override_settings(DEBUG=True):
            call_command("seed_demo", "--size", "large", stdout=StringIO(), stderr=err)
        return err.getvalue()

    first = seed_large()
    assert "History at scale (bulk): 600 new orders" in first
    assert Order.objects.count() == 640
    assert Order.objects.filter(client_id__startswith="bulk-").count() == 600
    assert_ledger_matches_levels()
    counts = [model.objects.count() for model in (Order, Member, StockMovement, PointsEntry)]
    assert "History at scale (bulk): 0 new orders" in seed_large()
    assert [model.objects.count() for model in (Order, Member, StockMovement, PointsEntry)] == (
        counts
    )
    run = NightlyRun.objects.get()
    # Every member who kept something of an order handed over is scored; one who brought
    # back all they bought has no purchase day (analytics.jobs).
    returned = dict(
        ReturnLine.objects.values_list("ret__order").annotate(worth=Sum("refund")).order_by()
    )
    handed_over = Order.objects.filter(
        member__isnull=False, status__in=["completed", "picked_up", "shipped"]
    )
    kept = {
        member
        for pk, member, total in handed_over.values_list("pk", "member_id", "total")
        if pk not in returned or total > returned[pk]
    }
    assert run.stages["rfm"]["rows"] == len(kept)
