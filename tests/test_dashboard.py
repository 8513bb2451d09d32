"""The managers' dashboard: staff with permission only, charts fed with the business's data,
the charting library served by the project (works offline)."""

import json
from datetime import date

import pytest
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders

from analytics.jobs import nightly_run
from omnichannel.roles import MANAGER
from tests.factories import make_staff
from tests.test_analytics_jobs import history  # noqa: F401  (the hand-made order set)

pytestmark = pytest.mark.django_db


def chart_data(response) -> dict:
    html = response.content.decode()
    start = html.index('<script id="dashboard-data" type="application/json">') + len(
        '<script id="dashboard-data" type="application/json">'
    )
    return json.loads(html[start : html.index("</script>", start)])


def test_managers_see_every_chart_fed_with_data(client, history, store):  # noqa: F811
    from inventory.services import StockLine, stock_receive
    from tests.factories import VariantFactory

    stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 2)], reference="d")
    nightly_run(run_date=date.today())
    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(manager)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    for chart in (
        "chart-sales",
        "chart-top-products",
        "chart-stock",
        "chart-segments",
        "chart-clv",
    ):
        assert f'id="{chart}"' in html
    assert "/static/analytics/vendor/chart.umd.min.js" in html
    assert "cdn" not in html.lower()
    data = chart_data(response)
    assert len(data["sales"]["days"]) == 90
    assert data["stock"][0]["low"] == 1
    assert sum(s["members"] for s in data["segments"]) == 3
    assert 'id="retention-heatmap"' in html


def test_the_charting_library_is_served_by_the_project():
    path = finders.find("analytics/vendor/chart.umd.min.js")
    assert path is not None
    with open(path, encoding="utf-8") as handle:
        assert "Chart.js v4" in handle.read(200)


def test_the_dashboard_is_refused_to_staff_without_permission_and_to_visitors(client):
    assert client.get("/dashboard/").status_code == 302  # to the login page
    client.force_login(make_staff("clerk"))
    assert client.get("/dashboard/").status_code == 403


def test_managers_find_the_dashboard_from_the_admin_home(client):
    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(manager)
    assert 'href="/dashboard/"' in client.get("/admin/").content.decode()
    client.force_login(make_staff("clerk", "catalog.view_product"))
    assert 'href="/dashboard/"' not in client.get("/admin/").content.decode()


def test_top_products_count_what_was_paid_over_the_sales_charts_days(client, web, pos, store):
    """Top products and the sales chart beside them agree: the discount is off (20.00 less
    5.00 for two tees), and an order 90 days ago is outside both (the chart's 90 days end
    today)."""
    from datetime import UTC, date, datetime, time, timedelta
    from decimal import Decimal

    from inventory.services import StockLine, stock_receive
    from orders.models import Order
    from orders.services import LineRequest, order_place
    from tests.factories import ChannelPriceFactory, VariantFactory

    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 5)], reference="delivery")
    order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        lines=[LineRequest("TEE", 2)],
        discount=Decimal("5.00"),
    )
    old = order_place(
        channel=pos, fulfillment="in_store", location=store, lines=[LineRequest("TEE", 1)]
    )
    ninety_days_ago = datetime.combine(date.today() - timedelta(days=90), time(12), tzinfo=UTC)
    Order.objects.filter(pk=old.pk).update(created_at=ninety_days_ago)
    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(manager)
    data = chart_data(client.get("/dashboard/"))
    assert sum(sum(series) for series in data["sales"]["channels"].values()) == 15.0
    assert data["top_products"] == [{"sku": "TEE", "currency": "EUR", "revenue": 15.0}]


@pytest.mark.parametrize("limited", [False, True])
def test_a_renamed_product_is_one_top_product_under_its_current_name(client, pos, store, limited):
    """TEE sold 3 x 10.00, then renamed and sold once more: top products grouped by SKU and
    name showed TEE twice (30.0 and 10.0) below a CAP of 35.00, where it is one product of
    40.0. One row per SKU now, under the name it sells as today."""
    from decimal import Decimal

    from analytics.selectors import top_products
    from catalog.models import Variant
    from inventory.services import StockLine, stock_receive
    from omnichannel.models import StaffStoreLimit
    from orders.services import LineRequest, order_place
    from tests.factories import ChannelPriceFactory, VariantFactory

    tee = VariantFactory(sku="TEE", name="M", product__name="Tee")
    cap = VariantFactory(sku="CAP", name="", product__name="Cap")
    ChannelPriceFactory(variant=tee, channel=pos, amount=Decimal("10.00"))
    ChannelPriceFactory(variant=cap, channel=pos, amount=Decimal("35.00"))
    stock_receive(
        lines=[StockLine(tee.pk, store.pk, 10), StockLine(cap.pk, store.pk, 5)], reference="d"
    )

    def sell(sku, quantity):
        order_place(
            channel=pos,
            fulfillment="in_store",
            location=store,
            lines=[LineRequest(sku, quantity)],
        )

    sell("TEE", 3)
    sell("CAP", 1)
    Variant.objects.filter(pk=tee.pk).update(name="M (organic)")
    tee.product.name = "Organic tee"
    tee.product.save()
    sell("TEE", 1)
    user = make_staff("boss")
    user.groups.add(Group.objects.get(name=MANAGER))
    if limited:
        StaffStoreLimit.objects.create(user=user).locations.set([store])
    client.force_login(user)
    top = chart_data(client.get("/dashboard/"))["top_products"]
    assert top == [
        {"sku": "TEE", "currency": "EUR", "revenue": 40.0},
        {"sku": "CAP", "currency": "EUR", "revenue": 35.0},
    ]
    rows = top_products(store_limit={store.pk} if limited else None)
    assert [(r["sku"], r["name"], r["units"]) for r in rows] == [
        ("TEE", "Organic tee M (organic)", 4),
        ("CAP", "Cap", 1),
    ]


def test_the_sales_chart_and_top_products_never_add_euros_and_pounds(client, web, store):
    """A tee sold for 10.00 EUR on the web shop and 10.00 GBP on a UK marketplace, and the
    web shop moving to pounds for a last sale: top products made it one TEE of 20.0, and
    the web shop's line added the day's euros and pounds. A series and a bar are now one
    currency's, and say which."""
    from decimal import Decimal

    from inventory.services import StockLine, stock_receive
    from omnichannel.models import Channel
    from orders.services import LineRequest, order_place, order_transition
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
    stock_receive(lines=[StockLine(tee.pk, store.pk, 3)], reference="delivery")

    def parcel(channel):
        placed = order_place(channel=channel, fulfillment="ship", lines=[LineRequest("TEE", 1)])
        order_transition(order_id=placed.pk, action="ship")

    parcel(web)
    parcel(uk)
    Channel.objects.filter(pk=web.pk).update(currency="GBP")
    web.refresh_from_db()
    parcel(web)
    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    client.force_login(manager)
    data = chart_data(client.get("/dashboard/"))
    sales = data["sales"]
    assert sales["currencies"] == {"uk": "GBP", "web EUR": "EUR", "web GBP": "GBP"}
    assert {name: sum(series) for name, series in sales["channels"].items()} == {
        "uk": 10.0,
        "web EUR": 10.0,
        "web GBP": 10.0,
    }
    assert data["top_products"] == [
        {"sku": "TEE", "currency": "GBP", "revenue": 20.0},
        {"sku": "TEE", "currency": "EUR", "revenue": 10.0},
    ]
