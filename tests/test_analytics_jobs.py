"""Nightly RFM and cohorts on a small hand-made order set: exact numbers, idempotent."""

from datetime import date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db.models import F
from django.utils import timezone

from analytics import jobs
from analytics.jobs import nightly_run
from analytics.models import CohortRetention, MemberScore, NightlyRun
from customers.models import Member
from orders.models import Order
from tests.factories import member_score

pytestmark = pytest.mark.django_db


def order(member, channel, day: str, total: str, status="completed"):
    when = datetime.fromisoformat(f"{day}T12:00:00+00:00")
    made = Order.objects.create(
        channel=channel,
        fulfillment="in_store" if channel.kind == "pos" else "ship",
        status=status,
        currency="EUR",
        subtotal=Decimal(total),
        total=Decimal(total),
        member=member,
    )
    Order.objects.filter(pk=made.pk).update(created_at=when)
    return made


@pytest.fixture
def history(web, pos):
    """ann: store first (Jan), back online in Mar; bob: web in Feb, twice the same day;
    cid: store in Feb only; a cancelled order and a guest order count for nobody."""
    ann = Member.objects.create(email="ann@example.com")
    bob = Member.objects.create(email="bob@example.com")
    cid = Member.objects.create(phone="+33611111111")
    order(ann, pos, "2026-01-10", "30.00")
    order(ann, web, "2026-03-05", "50.00")
    order(bob, web, "2026-02-01", "20.00")
    order(bob, web, "2026-02-01", "10.00")  # same day: one purchase of 30.00
    order(cid, pos, "2026-02-20", "80.00")
    order(cid, pos, "2026-03-01", "99.00", status="cancelled")
    order(None, pos, "2026-03-02", "15.00")
    return ann, bob, cid


def test_rfm_is_exact_on_a_hand_made_history(history):
    ann, bob, cid = history
    nightly_run(run_date=date(2026, 3, 31))
    rows = {s.member_id: s for s in MemberScore.objects.all()}
    assert set(rows) == {ann.pk, bob.pk, cid.pk}
    a, b, c = rows[ann.pk], rows[bob.pk], rows[cid.pk]
    assert (a.recency_days, a.frequency, a.monetary, a.first_channel) == (
        26,
        2,
        Decimal("40.00"),
        "store",
    )
    assert (b.recency_days, b.frequency, b.monetary, b.first_channel) == (
        58,
        1,
        Decimal("30.00"),
        "web",
    )
    assert (c.recency_days, c.frequency, c.monetary, c.first_channel) == (
        39,
        1,
        Decimal("80.00"),
        "store",
    )
    # Three members: each stands at the middle of its third (1/6, 3/6, 5/6) in fifths.
    assert (b.r_score, c.r_score, a.r_score) == (1, 3, 5)
    assert (b.m_score, a.m_score, c.m_score) == (1, 3, 5)
    # Two purchase days put ann above the two one-time buyers, who score 1 whatever.
    assert (a.f_score, b.f_score, c.f_score) == (5, 1, 1)
    assert (a.segment, c.segment) == ("champions", "promising")
    assert {s.segment for s in rows.values()} <= {
        "champions",
        "new",
        "loyal",
        "at_risk",
        "hibernating",
        "promising",
    }
    assert b.segment == "hibernating"


def test_cohorts_by_month_and_first_channel_are_exact(history):
    nightly_run(run_date=date(2026, 3, 31))
    cells = {
        (c.cohort.isoformat(), c.first_channel, c.months_since): (c.members, c.active)
        for c in CohortRetention.objects.all()
    }
    assert cells == {
        ("2026-01-01", "store", 0): (1, 1),
        ("2026-01-01", "store", 2): (1, 1),  # ann came back, online, two months later
        ("2026-02-01", "web", 0): (1, 1),
        ("2026-02-01", "store", 0): (1, 1),
    }


def test_a_marketplace_first_buyer_is_online_first_not_store_first(web, pos):
    """first_channel is web (online) or store (a POS): a member whose first purchase was on
    a marketplace, an online channel, was counted store-first in RFM and the cohorts. A
    first day at a store and on a marketplace is still store-first, as with the web shop."""
    from tests.factories import ChannelFactory

    market = ChannelFactory(code="market", kind="marketplace", currency="EUR")
    ann = Member.objects.create(email="ann@example.com")
    bob = Member.objects.create(email="bob@example.com")
    order(ann, market, "2026-03-10", "10.00")
    order(bob, market, "2026-02-10", "10.00")
    order(bob, pos, "2026-02-10", "10.00")
    nightly_run(run_date=date(2026, 3, 31))
    firsts = dict(MemberScore.objects.values_list("member_id", "first_channel"))
    assert firsts == {ann.pk: "web", bob.pk: "store"}
    cohorts = CohortRetention.objects.values_list("cohort", "first_channel")
    assert sorted((c.isoformat(), f) for c, f in cohorts) == [
        ("2026-02-01", "store"),
        ("2026-03-01", "web"),
    ]


def test_the_nightly_run_twice_for_one_date_gives_the_same_rows(history):
    nightly_run(run_date=date(2026, 3, 31))
    first = (
        list(MemberScore.objects.values()),
        list(
            CohortRetention.objects.values(
                "cohort", "first_channel", "months_since", "members", "active"
            )
        ),
    )
    out = StringIO()
    call_command("run_nightly", "--date", "2026-03-31", stdout=out, stderr=StringIO())
    again = (
        list(MemberScore.objects.values()),
        list(
            CohortRetention.objects.values(
                "cohort", "first_channel", "months_since", "members", "active"
            )
        ),
    )
    assert again == first
    runs = NightlyRun.objects.filter(run_date=date(2026, 3, 31))
    assert runs.count() == 2 and all(run.status == "succeeded" for run in runs)
    assert runs.first().stages["rfm"]["rows"] == 3
    assert "succeeded" in out.getvalue()


def test_orders_after_the_date_do_not_count(history):
    nightly_run(run_date=date(2026, 2, 15))
    assert MemberScore.objects.count() == 2  # ann (Jan) and bob (Feb 1); cid came later


@pytest.fixture
def manager_api():
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.roles import MANAGER
    from tests.factories import make_staff

    user = make_staff("boss")
    user.groups.add(Group.objects.get(name=MANAGER))
    api = APIClient()
    api.force_authenticate(user)
    return api


def test_sales_by_channel_location_and_day_are_exact(history, manager_api):
    base = "/api/v1/analytics/sales/?from=2026-01-01&to=2026-03-31"
    by_channel = manager_api.get(f"{base}&by=channel").json()
    assert by_channel["from"] == "2026-01-01" and by_channel["to"] == "2026-03-31"
    assert by_channel["results"] == [
        {
            "key": "pos",
            "currency": "EUR",
            "orders": 3,
            "revenue": "125.00",
        },  # 30 + 80 + a guest's 15
        {"key": "web", "currency": "EUR", "orders": 3, "revenue": "80.00"},
    ]
    assert by_channel["totals"]["orders"] == 6
    assert by_channel["totals"]["revenue"] == "205.00"
    by_day = manager_api.get(f"{base}&by=day").json()["results"]
    assert {"key": "2026-02-01", "currency": "EUR", "orders": 2, "revenue": "30.00"} in by_day
    march = manager_api.get("/api/v1/analytics/sales/?from=2026-03-01&to=2026-03-31").json()
    assert march["totals"]["orders"] == 2  # the cancelled order does not count


@pytest.fixture
def served_from_three(web, pos, store):
    """web <- wh, lyon, paris; pos <- lyon. TEE 10.00, MUG 5.00, handed over: a parcel of 3
    TEE split one each from wh, lyon and paris with 0.01 off (29.99), a till sale of 2 MUG at
    lyon (10.00), a pickup of a MUG at paris (5.00), a parcel of a MUG from wh (5.00), and
    one MUG of the till sale brought back."""
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_return, order_transition
    from tests.factories import (
        ChannelLocationFactory,
        ChannelPriceFactory,
        LocationFactory,
        VariantFactory,
    )

    wh = LocationFactory(code="wh", kind="warehouse", pickup=False)
    paris = LocationFactory(code="paris")
    ChannelLocationFactory(channel=web, location=wh, priority=1)
    ChannelLocationFactory(channel=web, location=paris, priority=3)
    tee, mug = VariantFactory(sku="TEE"), VariantFactory(sku="MUG")
    for variant, price in ((tee, "10.00"), (mug, "5.00")):
        for channel in (web, pos):
            ChannelPriceFactory(variant=variant, channel=channel, amount=Decimal(price))
    stock_receive(
        lines=[
            *(StockLine(tee.pk, where.pk, 1) for where in (wh, store, paris)),
            StockLine(mug.pk, store.pk, 2),
            StockLine(mug.pk, paris.pk, 1),
            StockLine(mug.pk, wh.pk, 1),
        ],
        reference="delivery",
    )
    split = order_place(
        channel=web,
        fulfillment="ship",
        discount=Decimal("0.01"),
        lines=[LineRequest("TEE", 3)],
    )
    assert split.lines.get().allocations.count() == 3
    sale = order_place(
        channel=pos, fulfillment="in_store", location=store, lines=[LineRequest("MUG", 2)]
    )
    pickup = order_place(
        channel=web, fulfillment="pickup", pickup_location=paris, lines=[LineRequest("MUG", 1)]
    )
    parcel = order_place(
        channel=web, fulfillment="ship", location=wh, lines=[LineRequest("MUG", 1)]
    )
    order_transition(order_id=split.pk, action="ship")
    order_transition(order_id=pickup.pk, action="picked_up")
    order_transition(order_id=parcel.pk, action="ship")
    order_return(order_id=sale.pk, location=store, lines=[LineRequest("MUG", 1)], restock=True)
    return {"wh": wh, "lyon": store, "paris": paris}


def test_sales_by_location_count_each_order_where_it_was_served(served_from_three, manager_api):
    """A parcel counted under the location it left from (it was under "web", a channel),
    a split one in each location's share; the locations' revenues add up to the total
    (each rounded on its own, they made 50.00 for 49.99), and the totals are the same
    whatever the grouping."""
    by_location = manager_api.get("/api/v1/analytics/sales/", {"by": "location"}).json()
    rows = by_location["results"]
    assert [(row["key"], row["orders"]) for row in rows] == [("lyon", 2), ("paris", 2), ("wh", 2)]
    served = {"lyon": "10.00", "paris": "5.00", "wh": "5.00"}  # and a third of the 29.99
    for row in rows:
        exact = Decimal(served[row["key"]]) + Decimal("29.99") / 3
        assert abs(Decimal(row["revenue"]) - exact) < Decimal("0.01"), row
    totals = by_location["totals"]
    assert (totals["orders"], totals["revenue"], totals["refunds"]) == (4, "49.99", "5.00")
    assert sum(Decimal(row["revenue"]) for row in rows) == Decimal("49.99")
    for by in ("channel", "day"):
        other = manager_api.get("/api/v1/analytics/sales/", {"by": by}).json()
        assert other["totals"] == totals, by


def test_sales_by_location_for_staff_limited_to_a_store_are_its_share(served_from_three):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.models import StaffStoreLimit
    from omnichannel.roles import MANAGER
    from tests.factories import make_staff

    user = make_staff("lyon manager")
    user.groups.add(Group.objects.get(name=MANAGER))
    StaffStoreLimit.objects.create(user=user).locations.set([served_from_three["lyon"]])
    api = APIClient()
    api.force_authenticate(user)
    body = api.get("/api/v1/analytics/sales/", {"by": "location"}).json()
    assert body["results"] == [{"key": "lyon", "currency": "EUR", "orders": 2, "revenue": "20.00"}]
    assert (body["totals"]["orders"], body["totals"]["revenue"]) == (2, "20.00")


@pytest.fixture
def split_on_two_days(web):
    """Two parcels, one on the web shop on 10 March and one on a marketplace on 11 March,
    each of 3 TEE at 10.00 with 0.01 off (29.99), split one unit each from wh, lyon and
    paris: each location served a third of each, 9.9967."""
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_transition
    from tests.factories import (
        ChannelFactory,
        ChannelLocationFactory,
        ChannelPriceFactory,
        LocationFactory,
        VariantFactory,
    )

    mkt = ChannelFactory(code="mkt", kind="marketplace", currency="EUR")
    wh, lyon, paris = (LocationFactory(code=c) for c in ("wh", "lyon", "paris"))
    for channel in (web, mkt):
        for n, where in enumerate((wh, lyon, paris)):
            ChannelLocationFactory(channel=channel, location=where, priority=n + 1)
    tee = VariantFactory(sku="TEE")
    for channel in (web, mkt):
        ChannelPriceFactory(variant=tee, channel=channel, amount=Decimal("10.00"))
    for channel, day in ((web, "2026-03-10"), (mkt, "2026-03-11")):
        stock_receive(
            lines=[StockLine(tee.pk, where.pk, 1) for where in (wh, lyon, paris)],
            reference="delivery",
        )
        parcel = order_place(
            channel=channel,
            fulfillment="ship",
            discount=Decimal("0.01"),
            lines=[LineRequest("TEE", 3)],
        )
        assert parcel.lines.get().allocations.count() == 3
        order_transition(order_id=parcel.pk, action="ship")
        Order.objects.filter(pk=parcel.pk).update(
            created_at=datetime.fromisoformat(f"{day}T12:00:00+00:00")
        )
    return {"wh": wh, "lyon": lyon, "paris": paris}


def _analytics_api(stores=None):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.models import StaffStoreLimit
    from omnichannel.roles import MANAGER
    from tests.factories import make_staff

    user = make_staff("manager of " + ",".join(s.code for s in stores) if stores else "boss")
    user.groups.add(Group.objects.get(name=MANAGER))
    if stores is not None:
        StaffStoreLimit.objects.create(user=user).locations.set(stores)
    api = APIClient()
    api.force_authenticate(user)
    return api


MARCH = {"from": "2026-03-01", "to": "2026-03-31"}


@pytest.mark.parametrize("by", ["channel", "day", "location"])
@pytest.mark.parametrize("limited", [False, True])
def test_a_split_parcels_share_is_worked_out_once_so_rows_add_up_to_the_totals(
    split_on_two_days, by, limited
):
    """Lyon's manager saw rows of 10.00 and 10.00 (each order's 9.9967 rounded per row) by
    channel and by day beside a total of 19.99 (rounded once). Each location's share of
    an order is now worked out once, in whole cents, and every figure adds those."""
    api = _analytics_api([split_on_two_days["lyon"]] if limited else None)
    body = api.get("/api/v1/analytics/sales/", {**MARCH, "by": by}).json()
    rows = [Decimal(row["revenue"]) for row in body["results"]]
    assert sum(rows) == Decimal(body["totals"]["revenue"]), (body["results"], body["totals"])
    expected = "20.00" if limited else "59.98"
    assert body["totals"]["revenue"] == expected
    assert body["totals"]["by_currency"][0]["revenue"] == expected


def test_a_stores_revenue_is_the_same_for_its_manager_and_for_head_office(split_on_two_days):
    """Head office's sales by location gave Lyon 20.00 (the spare cent of 59.98 spread
    over three equal shares landed on Lyon), while Lyon's own manager saw 19.99 for Lyon,
    by location and in total. Each order's 29.99 is spread over its allocations: 10.00,
    10.00 and 9.99, the spare cents to the first allocations (wh's and lyon's)."""
    rows = _analytics_api().get("/api/v1/analytics/sales/", {**MARCH, "by": "location"}).json()
    for_head_office = {row["key"]: row["revenue"] for row in rows["results"]}
    assert for_head_office == {"lyon": "20.00", "paris": "19.98", "wh": "20.00"}
    for where in ("wh", "lyon", "paris"):
        api = _analytics_api([split_on_two_days[where]])
        mine = api.get("/api/v1/analytics/sales/", {**MARCH, "by": "location"}).json()
        assert [(row["key"], row["revenue"]) for row in mine["results"]] == [
            (where, for_head_office[where])
        ]
        assert mine["totals"]["revenue"] == for_head_office[where]
        for by in ("channel", "day"):
            other = api.get("/api/v1/analytics/sales/", {**MARCH, "by": by}).json()
            assert other["totals"]["revenue"] == for_head_office[where], (where, by)


def test_a_store_managers_dashboard_counts_the_same_cents_as_their_sales(client, split_on_two_days):
    """The sales chart's points of Lyon's manager are the same whole cents as their sales
    figures: 10.00 a day, 20.00 in all (a chart rounding each day apart made 10.00 + 10.00
    beside 19.99)."""
    from django.contrib.auth.models import Group

    from analytics.selectors import daily_revenue_by_channel, top_products
    from omnichannel.models import StaffStoreLimit
    from omnichannel.roles import MANAGER
    from tests.factories import make_staff

    lyon = frozenset({split_on_two_days["lyon"].pk})
    chart = daily_revenue_by_channel(today=date(2026, 3, 31), limit=lyon)
    assert {code: sum(points) for code, points in chart["channels"].items()} == {
        "mkt": 10.0,
        "web": 10.0,
    }
    top = top_products(today=date(2026, 3, 31), store_limit=lyon)
    assert [(row["sku"], row["revenue"], row["units"]) for row in top] == [
        ("TEE", Decimal("20.00"), 2)
    ]
    user = make_staff("lyon manager")
    user.groups.add(Group.objects.get(name=MANAGER))
    StaffStoreLimit.objects.create(user=user).locations.set([split_on_two_days["lyon"]])
    client.force_login(user)
    assert client.get("/dashboard/").status_code == 200


def test_each_locations_cents_of_an_order_are_its_lines_spread_as_pricing_spreads(web):
    """The database's spread of an order over its allocations is `orders.pricing.spread`
    of what each line was paid over its allocations' units: lines split unevenly, a
    discount over several lines, equal remainders. The lines' cents add up to the order's
    total, and a SKU's over every location to what its lines were paid."""
    import random

    from analytics.served import served_by_location, served_by_sku
    from inventory.services import StockLine, stock_receive
    from orders.models import Allocation
    from orders.pricing import spread
    from orders.services import LineRequest, order_place
    from tests.factories import (
        ChannelLocationFactory,
        ChannelPriceFactory,
        LocationFactory,
        VariantFactory,
    )

    rng = random.Random(21)
    places = [LocationFactory(code=f"loc-{n}") for n in range(4)]
    for n, where in enumerate(places):
        ChannelLocationFactory(channel=web, location=where, priority=n + 1)
    variants = [VariantFactory(sku=f"SKU-{n}") for n in range(3)]
    for variant in variants:
        price = Decimal(rng.randint(1, 2000)) / 100
        ChannelPriceFactory(variant=variant, channel=web, amount=price)
    expected: dict[int, Decimal] = {}
    paid: dict[str, Decimal] = {}
    split_lines = 0
    for _ in range(12):
        wanted = [
            LineRequest(variant.sku, rng.randint(1, 5)) for variant in rng.sample(variants, 2)
        ]
        # Just the units wanted, each at a location drawn: the parcel takes them where they
        # are, one line from up to four locations, unevenly.
        skus = {variant.sku: variant for variant in variants}
        stock_receive(
            lines=[
                StockLine(skus[line.sku].pk, rng.choice(places).pk, 1)
                for line in wanted
                for _ in range(line.quantity)
            ],
            reference="delivery",
        )
        placed = order_place(
            channel=web,
            fulfillment="ship",
            discount=Decimal(rng.randint(0, 99)) / 100,
            lines=wanted,
        )
        allocations = list(
            Allocation.objects.filter(line__order=placed).select_related("line").order_by("id")
        )
        split_lines += len(allocations) - len({a.line_id for a in allocations})
        of_order = Decimal("0.00")
        for line in placed.lines.all():
            mine = [a for a in allocations if a.line_id == line.pk]
            shares = spread(line.paid, [Decimal(a.quantity) for a in mine])
            for allocation, cents in zip(mine, shares, strict=True):
                where = allocation.location_id
                expected[where] = expected.get(where, Decimal("0.00")) + cents
                of_order += cents
            paid[line.sku] = paid.get(line.sku, Decimal("0.00")) + line.paid
        assert of_order == placed.total
    assert split_lines >= 5, split_lines  # the draws split lines between locations
    Order.objects.update(status="shipped")
    codes = {where.pk: where.code for where in places}
    rows = served_by_location(Order.objects.all(), limit=None, currency=F("currency"))
    assert {row["key"]: row["revenue"] for row in rows} == {
        codes[where]: cents for where, cents in expected.items()
    }
    everywhere = frozenset(where.pk for where in places)
    rows = served_by_sku(Order.objects.all(), limit=everywhere, currency=F("currency"), top=9)
    assert {row["sku"]: row["revenue"] for row in rows} == paid


@pytest.fixture
def two_split_lines(web):
    """A parcel of TEE x2 and MUG x2 at 5.00 with 0.02 off: each line paid 9.99 (10.00 less
    its 0.01 of the discount), each served one unit from wh and one from lyon (4.995 each),
    shipped today."""
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_transition
    from tests.factories import (
        ChannelLocationFactory,
        ChannelPriceFactory,
        LocationFactory,
        VariantFactory,
    )

    wh = LocationFactory(code="wh", kind="warehouse", pickup=False, ships=True)
    lyon = LocationFactory(code="lyon", ships=True, pickup=True)
    ChannelLocationFactory(channel=web, location=wh, priority=1)
    ChannelLocationFactory(channel=web, location=lyon, priority=2)
    variants = [VariantFactory(sku="TEE"), VariantFactory(sku="MUG")]
    for variant in variants:
        ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("5.00"))
    stock_receive(
        lines=[StockLine(v.pk, where.pk, 1) for v in variants for where in (wh, lyon)],
        reference="delivery",
    )
    parcel = order_place(
        channel=web,
        fulfillment="ship",
        lines=[LineRequest("TEE", 2), LineRequest("MUG", 2)],
        discount=Decimal("0.02"),
    )
    for line in parcel.lines.all():
        assert line.paid == Decimal("9.99")
        assert sorted(a.location_id for a in line.allocations.all()) == [wh.pk, lyon.pk]
    order_transition(order_id=parcel.pk, action="ship")
    return {"wh": wh, "lyon": lyon, "order": parcel}


def test_a_manager_of_every_store_sees_what_each_sku_was_paid_as_head_office_does(
    two_split_lines,
):
    """The spare cents of the split lines were ranked over the whole order, so both went to
    TEE's allocations (the lower ids): TEE counted 10.00 and MUG 9.98 for a manager of both
    stores, where head office counts what each line was paid, 9.99. Each line's paid is
    spread over its own allocations (5.00 to the first, wh's, and 4.99): 9.99 a SKU, and
    the locations still add up to the order's 19.98."""
    from analytics.selectors import sales, top_products

    every_store = frozenset(two_split_lines[where].pk for where in ("wh", "lyon"))
    head_office = {p["sku"]: p["revenue"] for p in top_products()}
    manager = {p["sku"]: p["revenue"] for p in top_products(store_limit=every_store)}
    assert head_office == {"TEE": Decimal("9.99"), "MUG": Decimal("9.99")}
    assert manager == head_office
    today = timezone.localdate()
    by_location = sales(start=today, end=today, by="location")
    assert {row["key"]: row["revenue"] for row in by_location["results"]} == {
        "lyon": Decimal("9.98"),
        "wh": Decimal("10.00"),
    }
    assert by_location["totals"]["revenue"] == Decimal("19.98")
    mine = sales(start=today, end=today, by="location", limit=every_store)
    assert mine["results"] == by_location["results"]
    assert mine["totals"]["revenue"] == Decimal("19.98")


@pytest.mark.parametrize("returns", [[2], [1, 1]], ids=["at-once", "one-by-one"])
def test_the_stores_refunds_of_a_split_line_add_up_to_head_offices(two_split_lines, returns):
    """Both TEE of the split parcel (9.99 paid for the line, one unit from wh, one from
    lyon) come back, together or one by one (5.00, then 4.99). Each store counted half of
    each refund and rounded its sum once: 4.995, so 5.00 each, 10.00 across the stores
    beside head office's 9.99. Each returned line's refund is now spread over the stores
    that served the line as its revenue is, in whole cents: 5.00 at wh, 4.99 at lyon."""
    from analytics.selectors import sales
    from orders.services import LineRequest, order_return

    for quantity in returns:
        order_return(
            order_id=two_split_lines["order"].pk,
            location=two_split_lines["lyon"],
            lines=[LineRequest("TEE", quantity)],
            restock=True,
        )
    today = timezone.localdate()

    def refunds(*where):
        limit = frozenset(two_split_lines[w].pk for w in where) if where else None
        return sales(start=today, end=today, by="location", limit=limit)["totals"]["refunds"]

    assert refunds() == Decimal("9.99")
    assert (refunds("wh"), refunds("lyon")) == (Decimal("5.00"), Decimal("4.99"))
    assert refunds("wh", "lyon") == refunds()


def test_sales_by_location_read_in_as_many_queries_for_more_orders_and_locations(
    served_from_three, manager_api, pos
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.models import Variant
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place
    from tests.factories import ChannelLocationFactory, LocationFactory

    def queries():
        with CaptureQueriesContext(connection) as captured:
            response = manager_api.get("/api/v1/analytics/sales/", {"by": "location"})
            assert response.status_code == 200
        return len(captured.captured_queries), len(response.json()["results"])

    queries()  # the user's permissions, read once
    before, locations = queries()
    mug = Variant.objects.get(sku="MUG")
    for n in range(3):
        store = LocationFactory(code=f"more-{n}")
        ChannelLocationFactory(channel=pos, location=store)
        stock_receive(lines=[StockLine(mug.pk, store.pk, 2)], reference="delivery")
        for _ in range(2):
            order_place(
                channel=pos, fulfillment="in_store", location=store, lines=[LineRequest("MUG", 1)]
            )
    assert queries() == (before, locations + 3)


@pytest.fixture
def euros_and_pounds(web, store):
    """The web shop sells in EUR, a UK marketplace in GBP, both shipping from Lyon: one
    10.00 EUR parcel and one 10.00 GBP parcel, handed over, and the pound one brought
    back."""
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_return, order_transition
    from tests.factories import (
        ChannelFactory,
        ChannelLocationFactory,
        ChannelPriceFactory,
        VariantFactory,
    )

    uk = ChannelFactory(code="uk", kind="marketplace", currency="GBP")
    ChannelLocationFactory(channel=uk, location=store, priority=1)
    tee = VariantFactory(sku="TEE")
    for channel in (web, uk):
        ChannelPriceFactory(variant=tee, channel=channel, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 2)], reference="delivery")
    parcels = {}
    for channel in (web, uk):
        parcel = order_place(channel=channel, fulfillment="ship", lines=[LineRequest("TEE", 1)])
        assert parcel.currency == channel.currency
        order_transition(order_id=parcel.pk, action="ship")
        parcels[channel.currency] = parcel
    order_return(
        order_id=parcels["GBP"].pk, location=store, lines=[LineRequest("TEE", 1)], restock=True
    )
    return uk


@pytest.mark.parametrize("by", ["channel", "location", "day"])
@pytest.mark.parametrize("limited", [False, True])
def test_sales_never_add_euros_and_pounds_into_one_figure(euros_and_pounds, store, by, limited):
    """A 10.00 EUR parcel and a 10.00 GBP parcel made "20.00" of revenue, in the totals and
    in Lyon's row by location and the day's row, with no currency. Each row is now one
    currency's and says which, and the totals are given per currency; the single figure
    of the totals is there only when the answer holds one currency."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.models import StaffStoreLimit
    from omnichannel.roles import MANAGER
    from tests.factories import make_staff

    user = make_staff("boss")
    user.groups.add(Group.objects.get(name=MANAGER))
    if limited:
        StaffStoreLimit.objects.create(user=user).locations.set([store])
    api = APIClient()
    api.force_authenticate(user)
    body = api.get("/api/v1/analytics/sales/", {"by": by}).json()
    key = {"channel": None, "location": "lyon", "day": timezone.localdate().isoformat()}[by]
    rows = [(r["key"], r["currency"], r["orders"], r["revenue"]) for r in body["results"]]
    if by == "channel":
        assert rows == [("uk", "GBP", 1, "10.00"), ("web", "EUR", 1, "10.00")]
    else:
        assert rows == [(key, "EUR", 1, "10.00"), (key, "GBP", 1, "10.00")]
    totals = body["totals"]
    assert totals["by_currency"] == [
        {"currency": "EUR", "orders": 1, "revenue": "10.00", "refunds": "0.00"},
        {"currency": "GBP", "orders": 1, "revenue": "10.00", "refunds": "10.00"},
    ]
    assert (totals["currency"], totals["revenue"], totals["refunds"]) == (None, None, None)
    assert (totals["orders"], totals["return_rate"]) == (2, 0.5)
    nothing = api.get(
        "/api/v1/analytics/sales/", {"by": by, "from": "2000-01-01", "to": "2000-01-31"}
    ).json()["totals"]
    assert (nothing["currency"], nothing["revenue"], nothing["by_currency"]) == (None, "0.00", [])


def test_sales_of_one_currency_keep_their_single_total_and_say_its_currency(
    served_from_three, manager_api
):
    body = manager_api.get("/api/v1/analytics/sales/", {"by": "channel"}).json()
    assert {row["currency"] for row in body["results"]} == {"EUR"}
    totals = body["totals"]
    assert (totals["currency"], totals["revenue"], totals["refunds"]) == ("EUR", "49.99", "5.00")
    assert totals["by_currency"] == [
        {"currency": "EUR", "orders": 4, "revenue": "49.99", "refunds": "5.00"}
    ]


def test_segments_clv_retention_and_member_detail_after_the_nightly_run(history, manager_api):
    ann, _, _ = history
    nightly_run(run_date=date(2026, 3, 31))
    segments = manager_api.get("/api/v1/analytics/rfm/").json()["results"]
    assert sum(row["members"] for row in segments) == 3
    listed = manager_api.get("/api/v1/analytics/clv/").json()["results"]
    assert {row["member"] for row in listed} == set(Member.objects.values_list("pk", flat=True))
    cohorts = manager_api.get("/api/v1/analytics/retention/?cohort=month").json()["results"]
    assert {
        "cohort": "2026-01-01",
        "first_channel": "store",
        "months_since": 2,
        "members": 1,
        "active": 1,
        "rate": 1.0,
    } in cohorts
    detail = manager_api.get(f"/api/v1/members/{ann.pk}/").json()
    assert detail["segment"] == MemberScore.objects.get(member=ann).segment


def test_rfm_segments_come_in_the_contracts_list_shape(history, manager_api, client):
    """CONTRACT General: lists are `{"next", "previous", "results"}`; the segments are one
    page, so `next` and `previous` are null, and the schema says so."""
    nightly_run(run_date=date(2026, 3, 31))
    body = manager_api.get("/api/v1/analytics/rfm/").json()
    assert set(body) == {"next", "previous", "results"}
    assert (body["next"], body["previous"]) == (None, None)
    assert sum(row["members"] for row in body["results"]) == 3
    schema = client.get("/api/schema/?format=json").json()
    fields = schema["components"]["schemas"]["RfmSegments"]["properties"]
    assert {"next", "previous", "results"} <= set(fields)
    assert fields["next"]["nullable"] and fields["previous"]["nullable"]


@pytest.mark.parametrize(
    "query", ["by=week", "from=yesterday", "from=2026-03-01&to=2026-01-01", "from=1900-01-01"]
)
def test_bad_sales_queries_are_400(manager_api, query):
    response = manager_api.get(f"/api/v1/analytics/sales/?{query}")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


@pytest.mark.parametrize("cohort", ["week", "MONTH", "quarter"])
def test_a_retention_cohort_other_than_month_is_400(history, manager_api, cohort):
    """The schema's enum is ["month"]; `cohort=week` was answered 200 with monthly cohorts."""
    nightly_run(run_date=date(2026, 3, 31))
    response = manager_api.get("/api/v1/analytics/retention/", {"cohort": cohort})
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert list(response.json()["errors"]) == ["cohort"]
    for query in ({"cohort": "month"}, {}):
        assert manager_api.get("/api/v1/analytics/retention/", query).json()["results"]


def test_analytics_are_for_staff_with_permission_only(history, web, web_client):
    from rest_framework.test import APIClient

    from tests.factories import make_staff

    assert web_client.get("/api/v1/analytics/sales/").status_code == 403
    nobody = APIClient()
    nobody.force_authenticate(make_staff("clerk"))
    for path in ("sales", "rfm", "clv", "retention"):
        assert nobody.get(f"/api/v1/analytics/{path}/").status_code == 403
    assert APIClient().get("/api/v1/analytics/rfm/").status_code == 401


def test_clv_is_skipped_and_recorded_when_history_is_too_thin(history):
    run = nightly_run(run_date=date(2026, 3, 31))
    assert run.status == "succeeded"
    assert "skipped" in run.stages["clv"]
    assert MemberScore.objects.filter(clv_12m__isnull=False).count() == 0


def _simulated_history(web, pos) -> date:
    """300 members' histories drawn from the models' own process (analytics.clv.simulate),
    as orders; returns the date to run the nightly for."""
    import random
    from datetime import timedelta

    from analytics import clv

    x, t_x, T, m = clv.simulate(
        300,
        clv.BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=3.0, log_likelihood=0.0),
        clv.GammaGammaParams(p=6.0, q=4.0, gamma=15.0, log_likelihood=0.0),
        T=52.0,
        seed=11,
    )
    as_of = date(2026, 6, 1)
    end = datetime.fromisoformat("2026-06-01T12:00:00+00:00")
    rng = random.Random(3)
    members = Member.objects.bulk_create([Member(email=f"m{n}@example.com") for n in range(300)])
    orders, dates = [], []
    for member, xi, txi, Ti, mi in zip(members, x, t_x, T, m, strict=True):
        first = end - timedelta(weeks=float(Ti))
        repeats = [*sorted(rng.uniform(0, float(txi)) for _ in range(int(xi) - 1)), float(txi)]
        moments = [0.0] + (repeats if xi > 0 else [])
        for weeks in moments:
            amount = Decimal(f"{max(float(mi), 5.0):.2f}")
            orders.append(
                Order(
                    channel=rng.choice([web, pos]),
                    fulfillment="ship",
                    status="completed",
                    currency="EUR",
                    subtotal=amount,
                    total=amount,
                    member=member,
                )
            )
            dates.append(first + timedelta(weeks=weeks))
    created = Order.objects.bulk_create(orders)
    for made, when in zip(created, dates, strict=True):  # auto_now_add: set it afterwards
        Order.objects.filter(pk=made.pk).update(created_at=when)
    return as_of


def test_clv_p_alive_and_expected_purchases_land_on_every_scored_member(web, pos):
    """Histories drawn from the models' own process (analytics.clv.simulate), as orders."""
    run = nightly_run(run_date=_simulated_history(web, pos))
    assert "skipped" not in run.stages["clv"], run.stages
    assert run.stages["clv"]["rows"] == MemberScore.objects.count() > 0
    assert set(run.parameters["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood", "no_dropout"}
    scores = list(MemberScore.objects.exclude(clv_12m=None))
    assert len(scores) == run.stages["clv"]["rows"]
    assert all(0.0 <= s.p_alive <= 1.0 for s in scores)
    assert all(s.expected_purchases_90d >= 0 and s.clv_12m >= 0 for s in scores)
    # Frequent, recent buyers are worth more than one-off shoppers long gone.
    frequent = [s.clv_12m for s in scores if s.frequency >= 4 and s.recency_days < 60]
    gone = [s.clv_12m for s in scores if s.frequency == 1 and s.recency_days > 200]
    assert frequent and gone and min(frequent) > max(gone)


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_a_members_clv_the_fit_cannot_give_is_left_empty_and_counted_without_a_warning(
    web, pos, monkeypatch
):
    """A fit on little history can give one member 0 * inf (numpy: "invalid value
    encountered"): that member's CLV is left empty and counted in the run's parameters, the
    others are written, and the run prints no RuntimeWarning (here an error)."""
    import numpy as np

    from analytics import clv

    as_of = _simulated_history(web, pos)
    fitted_p_alive = clv.bgnbd_p_alive

    def p_alive_one_degenerate(params, x, t_x, T):
        alive = fitted_p_alive(params, x, t_x, T)
        zero_times_inf = np.zeros_like(alive)
        zero_times_inf[0] = np.inf
        return alive + zero_times_inf * np.where(np.arange(len(alive)) == 0, 0.0, 1.0)

    monkeypatch.setattr(clv, "bgnbd_p_alive", p_alive_one_degenerate)
    run = nightly_run(run_date=as_of)

    assert run.status == "succeeded", run.error
    assert run.parameters["clv_not_finite"] == 1
    scored = MemberScore.objects.count()
    assert run.stages["clv"]["rows"] == scored - 1
    assert MemberScore.objects.filter(clv_12m=None).count() == 1


def test_stock_out_rate_per_channel_counts_published_skus_shown_as_unavailable(
    web, store, manager_api
):
    from catalog.models import ChannelPrice
    from inventory.services import StockLine, stock_receive
    from inventory.tasks import sync_channel_availability
    from tests.factories import VariantFactory

    in_stock, sold_out, never = VariantFactory(), VariantFactory(), VariantFactory()
    for variant in (in_stock, sold_out, never):
        ChannelPrice.objects.create(variant=variant, channel=web, amount=Decimal("9.00"))
    stock_receive(lines=[StockLine(in_stock.pk, store.pk, 5)], reference="d")
    stock_receive(lines=[StockLine(sold_out.pk, store.pk, 1)], reference="d")  # safety 0
    sync_channel_availability()
    from inventory.services import stock_sell_now

    stock_sell_now(lines=[StockLine(sold_out.pk, store.pk, 1)], reference="pos:1")
    sync_channel_availability()
    totals = manager_api.get("/api/v1/analytics/sales/").json()["totals"]
    assert totals["stock_out_rate"] == {"web": round(2 / 3, 4)}


def test_discontinued_skus_are_no_part_of_the_stock_out_rate(web, store, manager_api):
    """The web shop sells one SKU, in stock. A discontinued variant (no stock) and a variant
    of a discontinued product (a few left on the shelf) keep their published prices but are
    not listed in products/ nor sold: the rate counted every published price, so the shop
    was shown a third out (and the leftover stock as a SKU on sale)."""
    from catalog.models import ChannelPrice
    from inventory.services import StockLine, stock_receive
    from inventory.tasks import sync_channel_availability
    from tests.factories import VariantFactory

    live, gone, retired = VariantFactory(sku="LIVE"), VariantFactory(sku="GONE"), VariantFactory()
    for variant in (live, gone, retired):
        ChannelPrice.objects.create(variant=variant, channel=web, amount=Decimal("9.00"))
    stock_receive(
        lines=[StockLine(live.pk, store.pk, 5), StockLine(retired.pk, store.pk, 3)],
        reference="d",
    )
    gone.is_active = False
    gone.save()
    retired.product.is_active = False
    retired.product.save()
    sync_channel_availability()
    listed = manager_api.get("/api/v1/products/", {"channel": "web"}).json()["results"]
    assert [v["sku"] for p in listed for v in p["variants"]] == ["LIVE"]
    totals = manager_api.get("/api/v1/analytics/sales/").json()["totals"]
    assert totals["stock_out_rate"] == {"web": 0.0}


def test_members_with_equal_figures_get_equal_scores_whatever_their_ids(pos):
    """Five members who each bought once, the same amount, the same day: ranks broken by id
    made two of them champions and two hibernating."""
    members = [Member.objects.create(email=f"m{i}@example.com") for i in range(5)]
    for member in members:
        order(member, pos, "2026-03-30", "40.00")
    nightly_run(run_date=date(2026, 3, 31))
    rows = set(
        MemberScore.objects.values_list("r_score", "f_score", "m_score", "segment").distinct()
    )
    assert rows == {(3, 1, 3, "promising")}


def test_a_lone_member_who_bought_today_is_not_hibernating(pos):
    ann = Member.objects.create(email="ann@example.com")
    order(ann, pos, "2026-03-31", "25.00")
    nightly_run(run_date=date(2026, 3, 31))
    score = MemberScore.objects.get(member=ann)
    assert (score.recency_days, score.r_score, score.f_score, score.m_score) == (0, 3, 1, 3)
    assert score.segment == "promising"


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo"])
def test_purchase_days_are_the_business_days_the_sales_figures_count(pos, settings, zone):
    """An order at 23:30 in New York on 31 January is 04:30 UTC on 1 February; one at
    08:30 in Tokyo on 1 February is 23:30 UTC on 31 January. The nightly figures count the
    local day, as the sales API does: the purchase, its cohort and the run for that day."""
    from zoneinfo import ZoneInfo

    from django.db.models.functions import TruncDate

    settings.TIME_ZONE = zone
    local = (
        datetime(2026, 1, 31, 23, 30) if zone == "America/New_York" else datetime(2026, 2, 1, 8, 30)
    )
    ann = Member.objects.create(email="ann@example.com")
    made = order(ann, pos, "2026-01-15", "30.00")
    Order.objects.filter(pk=made.pk).update(created_at=local.replace(tzinfo=ZoneInfo(zone)))
    [sales_day] = Order.objects.annotate(day=TruncDate("created_at")).values_list("day", flat=True)
    assert sales_day == local.date()

    nightly_run(run_date=local.date())
    score = MemberScore.objects.get(member=ann)
    assert score.first_purchase == score.last_purchase == local.date()
    assert score.recency_days == 0
    assert list(CohortRetention.objects.values_list("cohort", flat=True)) == [
        local.date().replace(day=1)
    ]


def test_goods_brought_back_are_not_still_counted_as_the_members_spend(pos, store):
    """Ann buys a 750.00 coat at the till on two days and brings the second one back, and
    on a third day buys two 100.00 scarves and brings one back. Her orders, the tier job and
    the sales figures all count what she kept; the nightly RFM row (and the CLV fitted on
    the same purchase days) counted 1,700.00 over three purchase days. A day whose goods
    all came back is no purchase day now, and a day counts what was kept of it: 750.00 and
    100.00 over two days."""
    from customers.services import tiers_recompute
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_return
    from tests.factories import ChannelPriceFactory, VariantFactory

    coat, scarf = VariantFactory(sku="COAT"), VariantFactory(sku="SCARF")
    ChannelPriceFactory(variant=coat, channel=pos, amount=Decimal("750.00"))
    ChannelPriceFactory(variant=scarf, channel=pos, amount=Decimal("100.00"))
    stock_receive(
        lines=[StockLine(coat.pk, store.pk, 2), StockLine(scarf.pk, store.pk, 2)],
        reference="delivery",
    )
    ann = Member.objects.create(email="ann@example.com")
    bought = {"COAT": [], "SCARF": []}
    for days_ago, sku, quantity in ((30, "COAT", 1), (20, "COAT", 1), (10, "SCARF", 2)):
        sale = order_place(
            channel=pos,
            fulfillment="in_store",
            location=store,
            member=ann,
            lines=[LineRequest(sku, quantity)],
        )
        Order.objects.filter(pk=sale.pk).update(
            created_at=timezone.now() - timedelta(days=days_ago)
        )
        bought[sku].append(sale)
    refunds = [
        order_return(order_id=sale.pk, location=store, lines=[LineRequest(sku, 1)], restock=True)
        for sku, sale in (("COAT", bought["COAT"][1]), ("SCARF", bought["SCARF"][0]))
    ]
    assert [back.refund for back in refunds] == [Decimal("750.00"), Decimal("100.00")]
    tiers_recompute()
    ann.refresh_from_db()
    assert ann.tier == "silver"  # 850.00 kept: silver (500), not gold (1,500)

    # Tonight's run, for yesterday (as beat runs it), counts what came back today.
    nightly_run(run_date=timezone.localdate() - timedelta(days=1))
    score = MemberScore.objects.get(member=ann)
    assert (score.frequency, score.monetary) == (2, Decimal("425.00"))
    assert score.monetary * score.frequency == Decimal("850.00")  # what she kept
    assert (timezone.localdate() - score.last_purchase).days == 10  # the scarves' day


def test_a_day_counts_the_channel_of_what_was_kept(web, pos, store):
    """Bob buys a coat at the till and a scarf online on the same day, and brings the coat
    back: the day he kept something of was a web day, so he is web-first, not store-first."""
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_return, order_transition
    from tests.factories import ChannelPriceFactory, VariantFactory

    coat, scarf = VariantFactory(sku="COAT"), VariantFactory(sku="SCARF")
    for channel in (web, pos):
        ChannelPriceFactory(variant=coat, channel=channel, amount=Decimal("750.00"))
        ChannelPriceFactory(variant=scarf, channel=channel, amount=Decimal("100.00"))
    stock_receive(
        lines=[StockLine(coat.pk, store.pk, 1), StockLine(scarf.pk, store.pk, 1)],
        reference="delivery",
    )
    bob = Member.objects.create(email="bob@example.com")
    till = order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        member=bob,
        lines=[LineRequest("COAT", 1)],
    )
    parcel = order_place(
        channel=web, fulfillment="ship", member=bob, lines=[LineRequest("SCARF", 1)]
    )
    order_transition(order_id=parcel.pk, action="ship")
    order_return(order_id=till.pk, location=store, lines=[LineRequest("COAT", 1)], restock=True)
    nightly_run(run_date=timezone.localdate())
    score = MemberScore.objects.get(member=bob)
    assert (score.frequency, score.monetary, score.first_channel) == (1, Decimal("100.00"), "web")


def test_a_clv_fit_without_a_finite_mean_spend_skips_the_stage_not_the_run(pos, monkeypatch):
    """Heavy-tailed baskets can fit a Gamma-Gamma q <= 1, for which one-time buyers have no
    finite expected spend (analytics.clv refuses it): the stage is skipped, as with too
    little history, the run succeeds, and the RFM and cohort figures stand. The fits are
    pinned to such an outcome, since the optimiser's on real data depends on the sample."""
    from analytics import clv

    monkeypatch.setattr(
        clv,
        "bgnbd_fit",
        lambda *a: clv.BGNBDParams(r=0.8, alpha=6.0, a=0.9, b=3.0, log_likelihood=0.0),
    )
    monkeypatch.setattr(
        clv,
        "gamma_gamma_fit",
        lambda *a: clv.GammaGammaParams(p=6.0, q=0.7, gamma=15.0, log_likelihood=0.0),
    )
    for i in range(10):
        member = Member.objects.create(email=f"m{i}@example.com")
        for month in (1, 4, 7) if i % 2 else (1,):  # half of them one-time buyers
            order(member, pos, f"2025-{month:02d}-{1 + i:02d}", f"{10 + i}.00")
    run = nightly_run(run_date=date(2025, 12, 31))
    assert run.status == NightlyRun.Status.SUCCEEDED
    assert "no finite spend" in run.stages["clv"]["skipped"]
    assert run.stages["rfm"]["rows"] == 10 and run.stages["cohorts"]["rows"] > 0
    assert not MemberScore.objects.filter(clv_12m__isnull=False).exists()


def test_refunds_count_the_goods_returned_whatever_paid_for_them(manager_api, pos, store):
    """100.00 paid 50.00 with points and 50.00 in money, all returned: 50.00 comes back in
    money and 5,000 points; the refunds are 100.00, on revenue's basis (the order total)."""
    from inventory.services import StockLine, stock_receive
    from orders.services import LineRequest, order_place, order_return
    from tests.factories import ChannelPriceFactory, VariantFactory

    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("50.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 5)], reference="delivery")
    member = Member.objects.create(email="points@example.com", points=5000)
    sale = order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        member=member,
        lines=[LineRequest("TEE", 2)],
        redeem_points=5000,
    )
    back = order_return(
        order_id=sale.pk, location=store, lines=[LineRequest("TEE", 2)], restock=True
    )
    assert (back.refund, back.points_refunded) == (Decimal("50.00"), 5000)
    today = date.today().isoformat()
    totals = manager_api.get("/api/v1/analytics/sales/", {"from": today, "to": today}).json()[
        "totals"
    ]
    assert (totals["revenue"], totals["refunds"], totals["return_rate"]) == (
        "100.00",
        "100.00",
        1.0,
    )


def test_refunds_keep_what_the_goods_were_worth_when_points_are_repriced(
    manager_api, pos, store, settings
):
    """3 x 1.00 paid 1.00 with 100 points (at 0.01) and 2.00 by card, all returned. The
    refunds were the money given back plus the points at today's POINT_VALUE: repriced to
    0.05 later, the same return counted 7.00 of refunds against 3.00 of revenue, for every
    manager, store-limited or not. Now each return counts the goods' worth it recorded."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from inventory.services import StockLine, stock_receive
    from omnichannel.models import StaffStoreLimit
    from omnichannel.roles import MANAGER
    from orders.services import LineRequest, PaymentRequest, order_place, order_return
    from tests.factories import ChannelPriceFactory, VariantFactory, make_staff

    settings.POINT_VALUE = "0.01"
    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("1.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 5)], reference="delivery")
    member = Member.objects.create(email="repriced@example.com", points=100)
    sale = order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        member=member,
        lines=[LineRequest("TEE", 3)],
        redeem_points=100,
        payments=[PaymentRequest("card", Decimal("2.00"))],
    )
    back = order_return(
        order_id=sale.pk, location=store, lines=[LineRequest("TEE", 3)], restock=True
    )
    assert (back.refund, back.points_refunded) == (Decimal("2.00"), 100)
    store_manager = make_staff("lyon-boss")
    store_manager.groups.add(Group.objects.get(name=MANAGER))
    StaffStoreLimit.objects.create(user=store_manager).locations.add(store)
    store_api = APIClient()
    store_api.force_authenticate(store_manager)
    today = date.today().isoformat()

    def revenue_and_refunds(api):
        totals = api.get("/api/v1/analytics/sales/", {"from": today, "to": today}).json()
        return totals["totals"]["revenue"], totals["totals"]["refunds"]

    assert revenue_and_refunds(manager_api) == ("3.00", "3.00")
    assert revenue_and_refunds(store_api) == ("3.00", "3.00")
    settings.POINT_VALUE = "0.05"  # the loyalty programme is repriced later on
    assert revenue_and_refunds(manager_api) == ("3.00", "3.00")
    assert revenue_and_refunds(store_api) == ("3.00", "3.00")


@pytest.mark.parametrize("name", ["from", "to"])
def test_a_bad_sales_date_is_reported_under_the_name_the_caller_sent(manager_api, name):
    body = manager_api.get("/api/v1/analytics/sales/", {name: "not-a-date"}).json()
    assert body["code"] == "invalid" and list(body["errors"]) == [name]


def test_staff_without_the_analytics_permission_are_told_so_not_that_they_are_store_limited(
    db,
):
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.roles import MERCHANDISER
    from tests.factories import make_staff

    merchandiser = make_staff("merch")
    merchandiser.groups.add(Group.objects.get(name=MERCHANDISER))
    api = APIClient()
    api.force_login(merchandiser)
    for url in ("rfm", "clv", "retention"):
        refused = api.get(f"/api/v1/analytics/{url}/")
        assert refused.status_code == 403
        assert "store-limited" not in refused.json()["detail"], url


def test_the_clv_chart_is_counted_by_the_database_band_by_band(
    manager_api, django_assert_num_queries
):
    """The web process read every member's score to bin them: now one row per band."""
    from analytics.selectors import clv_histogram

    members = Member.objects.bulk_create([Member(email=f"m{n}@example.com") for n in range(40)])
    MemberScore.objects.bulk_create(
        [member_score(m, clv_12m=Decimal(n * 10)) for n, m in enumerate(members)]
    )
    with django_assert_num_queries(2) as captured:  # the top, then the bands
        chart = clv_histogram(bins=4)
    assert chart["counts"] == [10, 10, 10, 10] and len(chart["labels"]) == 4
    assert "GROUP BY" in captured.captured_queries[1]["sql"]


def test_the_clv_and_retention_lists_run_a_constant_number_of_queries(
    manager_api, django_assert_max_num_queries
):
    """Nothing counted these two lists' queries: a page of members' scores or of cohort
    cells costs as many queries as a page of one."""

    def scored(count):
        members = Member.objects.bulk_create(
            [Member(email=f"m{Member.objects.count()}-{n}@example.com") for n in range(count)]
        )
        MemberScore.objects.bulk_create(
            [member_score(m, clv_12m=Decimal(n)) for n, m in enumerate(members)]
        )

    def cohorts(count):
        months = CohortRetention.objects.count()
        CohortRetention.objects.bulk_create(
            [
                CohortRetention(
                    as_of=date(2026, 3, 31),
                    cohort=date(2025, 1, 1),
                    first_channel="web",
                    months_since=months + n,
                    members=10,
                    active=3,
                )
                for n in range(count)
            ]
        )

    for url, add in (("/api/v1/analytics/clv/", scored), ("/api/v1/analytics/retention/", cohorts)):
        add(1)
        manager_api.get(url)
        with django_assert_max_num_queries(20) as few:
            manager_api.get(url)
        baseline = len(few.captured_queries)
        add(15)
        with django_assert_max_num_queries(baseline):
            assert len(manager_api.get(url).json()["results"]) == 16, url


def test_a_day_of_the_largest_orders_the_books_take_is_scored(pos):
    """Each order under the 9,999,999,999.99 an order may total, two of them on one day: the
    day's spend overflowed MemberScore.monetary (12 digits) and failed the whole run."""
    big = Member.objects.create(email="big@example.com")
    small = Member.objects.create(email="small@example.com")
    order(big, pos, "2026-01-10", "9999990000.00")
    order(big, pos, "2026-01-10", "9999990000.00")
    order(small, pos, "2026-01-12", "10.00")
    assert nightly_run(run_date=date(2026, 3, 31)).status == NightlyRun.Status.SUCCEEDED
    assert MemberScore.objects.get(member=big).monetary == Decimal("19999980000.00")


def test_run_nightly_refuses_a_future_date_and_says_why_a_run_failed(pos, monkeypatch):
    """A date to come would replace every member's scores with figures as of a day that has
    not happened; a failed stage is a one-line error (exit code 1), not a traceback."""
    tomorrow = (timezone.localdate() + timedelta(days=1)).isoformat()
    with pytest.raises(CommandError, match="in the future"):
        call_command("run_nightly", "--date", tomorrow, stdout=StringIO(), stderr=StringIO())
    with pytest.raises(CommandError, match="YYYY-MM-DD"):  # an empty --date is not today
        call_command("run_nightly", "--date", "", stdout=StringIO(), stderr=StringIO())
    assert not NightlyRun.objects.exists()

    def broken(**kwargs):
        raise ValueError("the disk is full")

    monkeypatch.setattr(jobs, "STAGES", [("rfm", broken)])
    with pytest.raises(CommandError, match="failed: ValueError: the disk is full"):
        call_command("run_nightly", "--date", "2026-03-31", stdout=StringIO(), stderr=StringIO())
    assert NightlyRun.objects.get().status == NightlyRun.Status.FAILED


def test_beats_nightly_run_counts_the_last_finished_day_not_today_so_far(pos):
    """Beat runs at 03:00 and counted today's sales so far: a second run of that date later
    in the day gave other rows. It is as of yesterday now, whenever it runs; a member whose
    only purchase is today is scored tomorrow night."""
    from analytics.tasks import run_nightly_jobs

    regular = Member.objects.create(email="regular@example.com")
    newcomer = Member.objects.create(email="new@example.com")
    today = timezone.localdate()
    order(regular, pos, (today - timedelta(days=30)).isoformat(), "10.00")
    order(regular, pos, today.isoformat(), "99.00")
    order(newcomer, pos, today.isoformat(), "99.00")
    run = NightlyRun.objects.get(pk=run_nightly_jobs())
    assert run.run_date == today - timedelta(days=1)
    [score] = MemberScore.objects.all()
    assert (score.member_id, score.frequency, score.last_purchase, score.monetary) == (
        regular.pk,
        1,
        today - timedelta(days=30),
        Decimal("10.00"),
    )


def test_a_nightly_run_the_database_broke_off_is_tried_again_for_the_same_day(pos, monkeypatch):
    """A lost connection or a lock conflict PostgreSQL ended failed the night's run, and
    nothing tried again: no figures until the next night. Beat's task now tries again (the
    run is idempotent), for the day the first try counted, a bounded number of times."""
    from django.db import OperationalError

    from analytics import tasks
    from omnichannel.celery import app

    monkeypatch.setitem(app.conf, "task_eager_propagates", False)  # as a worker: it retries
    member = Member.objects.create(email="m@example.com")
    order(member, pos, (timezone.localdate() - timedelta(days=3)).isoformat(), "10.00")
    real, tries = jobs.rfm_stage, []

    def broken_once(**kwargs):
        tries.append(kwargs["as_of"])
        if len(tries) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(jobs, "STAGES", [("rfm", broken_once), *jobs.STAGES[1:]])
    tasks.run_nightly_jobs.apply()
    yesterday = timezone.localdate() - timedelta(days=1)
    assert tries == [yesterday, yesterday]
    assert list(NightlyRun.objects.order_by("pk").values_list("run_date", "status")) == [
        (yesterday, NightlyRun.Status.FAILED),
        (yesterday, NightlyRun.Status.SUCCEEDED),
    ]
    assert MemberScore.objects.get().member_id == member.pk

    def always_broken(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(jobs, "STAGES", [("rfm", always_broken)])
    NightlyRun.objects.all().delete()
    with pytest.raises(OperationalError):
        tasks.run_nightly_jobs.apply().get()
    assert NightlyRun.objects.filter(status="failed").count() == 1 + tasks.RETRIES


def _lose_the_connection():
    """What a failover or a dropped TCP connection does to the stage's next statement."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("inside_atomic", [False, True])
def test_a_run_whose_connection_is_lost_is_recorded_failed_with_what_the_task_retries(
    pos, monkeypatch, inside_atomic
):
    """Saving the failure on the lost connection raised InterfaceError, which replaced the
    OperationalError the task retries: no retry, and the run stayed "running" for good
    (found by the second-round review). The loss outside any transaction is clv_stage's
    read of every purchase day; inside, a stage's own transaction."""
    from django.db import OperationalError, connection, transaction

    from tests.concurrency import require_postgres

    require_postgres()

    def lost(**kwargs):
        if inside_atomic:
            with transaction.atomic():
                _lose_the_connection()
        else:
            _lose_the_connection()

    monkeypatch.setattr(jobs, "STAGES", [("clv", lost)])
    with pytest.raises(OperationalError):
        nightly_run(run_date=timezone.localdate() - timedelta(days=1))
    connection.close_if_unusable_or_obsolete()
    run = NightlyRun.objects.get()
    assert run.status == NightlyRun.Status.FAILED and run.finished_at is not None
    assert run.error.startswith("OperationalError")


@pytest.mark.django_db(transaction=True)
def test_the_nightly_task_tries_again_after_a_lost_connection(pos, monkeypatch):
    from celery.signals import task_prerun
    from django.db import connection

    from analytics import tasks
    from omnichannel.celery import app
    from tests.concurrency import require_postgres

    require_postgres()
    monkeypatch.setitem(app.conf, "task_eager_propagates", False)  # as a worker: it retries
    member = Member.objects.create(email="m@example.com")
    order(member, pos, (timezone.localdate() - timedelta(days=3)).isoformat(), "10.00")
    real, tries = jobs.rfm_stage, []

    def lost_once(**kwargs):
        tries.append(kwargs["as_of"])
        if len(tries) == 1:
            _lose_the_connection()
        return real(**kwargs)

    # A worker closes an unusable connection before each task it runs (omnichannel/celery.py
    # does it as Django does around a request): the same here around the eager retry.
    def before_each_task(**kwargs):
        connection.close_if_unusable_or_obsolete()

    task_prerun.connect(before_each_task, weak=False, dispatch_uid="test-lost-connection")
    try:
        monkeypatch.setattr(jobs, "STAGES", [("rfm", lost_once), *jobs.STAGES[1:]])
        tasks.run_nightly_jobs.apply()
    finally:
        task_prerun.disconnect(dispatch_uid="test-lost-connection")
        connection.close_if_unusable_or_obsolete()
    yesterday = timezone.localdate() - timedelta(days=1)
    assert tries == [yesterday, yesterday]
    assert list(NightlyRun.objects.order_by("pk").values_list("status", flat=True)) == [
        NightlyRun.Status.FAILED,
        NightlyRun.Status.SUCCEEDED,
    ]
    assert MemberScore.objects.get().member_id == member.pk


def _largest_sales(channel, location, count: int) -> None:
    """`count` in-store sales of the largest total an order takes, each returned whole."""
    from orders.models import Allocation, OrderLine, Return, ReturnLine
    from orders.services import MAX_AMOUNT
    from tests.factories import VariantFactory

    variant = VariantFactory(sku="BIG")
    orders = Order.objects.bulk_create(
        Order(
            channel=channel,
            location=location,
            fulfillment="in_store",
            status="completed",
            currency="VND",  # no cents: a large amount is an ordinary one
            subtotal=MAX_AMOUNT,
            total=MAX_AMOUNT,
        )
        for _ in range(count)
    )
    Order.objects.update(created_at=datetime.fromisoformat("2026-03-10T12:00:00+00:00"))
    lines = OrderLine.objects.bulk_create(
        OrderLine(
            order=made,
            variant=variant,
            sku="BIG",
            name="Big",
            unit_price=MAX_AMOUNT,
            quantity=1,
            line_total=MAX_AMOUNT,
        )
        for made in orders
    )
    Allocation.objects.bulk_create(
        Allocation(line=line, location=location, quantity=1) for line in lines
    )
    returns = Return.objects.bulk_create(
        Return(order=made, location=location, restock=False, refund=MAX_AMOUNT) for made in orders
    )
    ReturnLine.objects.bulk_create(
        ReturnLine(ret=ret, line=line, quantity=1, refund=MAX_AMOUNT)
        for ret, line in zip(returns, lines, strict=True)
    )


@pytest.mark.parametrize("by", ["channel", "location", "day"])
@pytest.mark.parametrize("limited", [False, True])
def test_sales_and_refunds_past_a_trillion_are_answered_not_a_500(pos, store, by, limited):
    """101 of the largest orders the books take (in a currency without cents, ordinary)
    add up past the 14 digits the answer allowed: DRF failed to quantize them, a 500. A sum
    now has room for as many orders as the books can number."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.models import StaffStoreLimit
    from omnichannel.roles import MANAGER
    from tests.factories import make_staff

    _largest_sales(pos, store, 101)
    user = make_staff("boss")
    user.groups.add(Group.objects.get(name=MANAGER))
    if limited:
        StaffStoreLimit.objects.create(user=user).locations.set([store])
    api = APIClient()
    api.force_authenticate(user)
    response = api.get(
        "/api/v1/analytics/sales/", {"from": "2026-03-01", "to": "2026-03-31", "by": by}
    )
    assert response.status_code == 200, response.content[:300]
    body = response.json()
    expected = "1009999999998.99"  # 101 x 9,999,999,999.99
    assert [row["revenue"] for row in body["results"]] == [expected]
    assert (body["totals"]["revenue"], body["totals"]["refunds"]) == (expected, expected)


def test_segments_of_a_day_of_the_largest_orders_are_answered_not_a_500(pos, manager_api):
    """The nightly run scores a day of two of the largest orders (its column has 18
    digits for it), but rfm/ answered the segment's average spend with 12: a 500."""
    big = Member.objects.create(email="big@example.com")
    order(big, pos, "2026-03-10", "9999999999.99")
    order(big, pos, "2026-03-10", "9999999999.99")
    nightly_run(run_date=date(2026, 3, 31))
    response = manager_api.get("/api/v1/analytics/rfm/")
    assert response.status_code == 200, response.content[:300]
    [segment] = response.json()["results"]
    assert (segment["members"], segment["monetary"]) == (1, "19999999999.98")


def test_an_unknown_clv_segment_is_a_400_not_an_empty_list(history, manager_api):
    """`clv/?segment=champoins` answered 200 with no members, as if the segment were empty;
    retention/ already refused a cohort it does not compute."""
    import inspect
    import re

    from analytics.models import SEGMENTS

    nightly_run(run_date=date(2026, 3, 31))
    typo = manager_api.get("/api/v1/analytics/clv/", {"segment": "champoins"})
    assert typo.status_code == 400
    assert typo.json()["code"] == "invalid" and typo.json()["errors"]["segment"]
    for segment in SEGMENTS:
        listed = manager_api.get("/api/v1/analytics/clv/", {"segment": segment})
        assert listed.status_code == 200
        assert {row["segment"] for row in listed.json()["results"]} <= {segment}
    assert manager_api.get("/api/v1/analytics/clv/", {"segment": ""}).status_code == 200
    given = set(re.findall(r"THEN '(\w+)'", inspect.getsource(jobs._rfm_rows_sql)))
    assert given | {"promising"} == set(SEGMENTS)  # promising: the CASE's ELSE


def test_a_run_whose_process_died_is_recorded_failed_by_the_next(pos):
    """A run whose process stopped (a worker killed mid-run) stayed "running" for good; the
    next run records it failed. A run started minutes ago may still be going: left alone."""
    stale = NightlyRun.objects.create(run_date=date(2026, 3, 30))
    going = NightlyRun.objects.create(run_date=date(2026, 3, 31))
    NightlyRun.objects.filter(pk=stale.pk).update(
        started_at=timezone.now() - jobs.ABANDONED_AFTER - timedelta(minutes=1)
    )
    NightlyRun.objects.filter(pk=going.pk).update(started_at=timezone.now() - timedelta(minutes=5))
    nightly_run(run_date=date(2026, 3, 31))
    stale.refresh_from_db()
    going.refresh_from_db()
    assert stale.status == NightlyRun.Status.FAILED and "Abandoned" in stale.error
    assert going.status == NightlyRun.Status.RUNNING
