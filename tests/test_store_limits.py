"""Staff limited to some stores see and change only those stores' stock, orders and figures,
in the API, the admin and the dashboard; staff without a limit and superusers see everything.

Foreign objects answer as the API answers a client for another channel's: absent from lists,
404 when opened; naming another store to change its stock is 403 `location_forbidden`. In the
admin another store's row answers as a missing one (Django's "doesn't exist" redirect)."""

from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from customers.models import MemberChannel
from inventory.models import StockLevel, StockMovement, Transfer, WebhookSubscription
from inventory.services import StockLine, stock_receive
from inventory.transfers import TransferItem, transfer_request, transfer_ship
from omnichannel.models import ApiClient, Channel, ChannelLocation, Location, StaffStoreLimit
from omnichannel.roles import MANAGER, MERCHANDISER
from omnichannel.selectors import store_limit
from orders.models import Order, Return
from orders.services import LineRequest, order_place, order_return
from tests.factories import (
    ChannelFactory,
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    VariantFactory,
    make_staff,
)
from tests.inventory_helpers import assert_ledger_matches_levels
from tests.test_dashboard import chart_data

pytestmark = pytest.mark.django_db

EXTRA_PERMS = (
    "orders.add_order",
    "orders.change_order",
    "orders.add_return",
    "orders.view_return",
)


def staff(username, *, stores=None, superuser=False):
    """A merchandiser and manager who may also take orders and returns; `stores` (a list of
    locations) puts a store limit on them."""
    user = make_staff(username, *EXTRA_PERMS, superuser=superuser)
    user.groups.add(*Group.objects.filter(name__in=[MERCHANDISER, MANAGER]))
    if stores is not None:
        StaffStoreLimit.objects.create(user=user).locations.set(stores)
    return user


def session(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


@pytest.fixture
def world(web, pos):
    """Stores A and B (and C), both channels fed by A and B. TEE: 20 at A and B; MUG: 1 at A,
    1 at B. A sale at A (10.00) and at B (20.00), a pickup at A, a web order shipped from
    B, a web order split between A and B; transfers A->B and B->C."""
    a, b, c = (LocationFactory(code=code) for code in ("store-a", "store-b", "store-c"))
    for channel in (web, pos):
        ChannelLocationFactory(channel=channel, location=a, priority=1)
        ChannelLocationFactory(channel=channel, location=b, priority=2)
    tee, mug = VariantFactory(sku="TEE"), VariantFactory(sku="MUG")
    for variant in (tee, mug):
        for channel in (web, pos):
            ChannelPriceFactory(variant=variant, channel=channel, amount=Decimal("10.00"))
    stock_receive(
        lines=[
            StockLine(tee.pk, a.pk, 20),
            StockLine(tee.pk, b.pk, 20),
            StockLine(mug.pk, a.pk, 1),
            StockLine(mug.pk, b.pk, 1),
        ],
        reference="delivery",
    )

    def place(channel, fulfillment, sku="TEE", quantity=1, **where):
        return order_place(
            channel=channel,
            fulfillment=fulfillment,
            lines=[LineRequest(sku, quantity)],
            **where,
        )

    return {
        "a": a,
        "b": b,
        "c": c,
        "tee": tee,
        "sale_a": place(pos, "in_store", location=a),
        "sale_b": place(pos, "in_store", quantity=2, location=b),
        "pickup_a": place(web, "pickup", pickup_location=a),
        "ship_b": place(web, "ship", location=b),
        "split": place(web, "ship", sku="MUG", quantity=2),
        "a_to_b": transfer_request(
            from_location_id=a.pk, to_location_id=b.pk, items=[TransferItem(tee.pk, 1)]
        ),
        "b_to_c": transfer_request(
            from_location_id=b.pk, to_location_id=c.pk, items=[TransferItem(tee.pk, 1)]
        ),
    }


@pytest.fixture
def limited(world):
    return staff("a-manager", stores=[world["a"]])


def results(api, url, **params):
    response = api.get(url, params)
    assert response.status_code == 200, response.json()
    return response.json()["results"]


# --- who is limited -----------------------------------------------------------------------


def test_no_limit_row_means_every_store_and_an_empty_limit_means_none(world):
    free = staff("free")
    nowhere = staff("nowhere", stores=[])
    root = staff("root", stores=[world["b"]], superuser=True)
    assert store_limit(user=free) is None
    assert store_limit(user=nowhere) == frozenset()
    assert store_limit(user=root) is None  # superusers are never limited
    assert results(session(nowhere), "/api/v1/stock/") == []
    assert results(session(nowhere), "/api/v1/orders/") == []


def test_the_limit_is_read_once_per_request(world, limited, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert store_limit(user=limited) == {world["a"].pk}
        assert store_limit(user=limited) == store_limit(user=limited)


# --- stock over the API ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/api/v1/stock/", "/api/v1/stock/movements/"])
def test_limited_staff_see_only_their_stores_stock_and_ledger(world, limited, url):
    api = session(limited)
    assert {row["location"] for row in results(api, url)} == {"store-a"}
    assert results(api, url, location="store-b") == []
    for everyone in (staff("free"), staff("root", stores=[world["b"]], superuser=True)):
        assert {row["location"] for row in results(session(everyone), url)} == {
            "store-a",
            "store-b",
        }


def test_limited_staff_adjust_and_count_only_at_their_stores(world, limited):
    api = session(limited)
    url = "/api/v1/stock/adjustments/"
    done = api.post(
        url, {"sku": "TEE", "location": "store-a", "delta": 2, "reason": "receipt"}, format="json"
    )
    assert done.status_code == 201, done.json()
    before = StockMovement.objects.count()
    for body in (
        {"sku": "TEE", "location": "store-b", "delta": 2, "reason": "receipt"},
        {"sku": "TEE", "location": "store-b", "counted": 0, "reason": "count"},
    ):
        refused = api.post(url, body, format="json")
        assert refused.status_code == 403
        assert refused.json()["code"] == "location_forbidden"
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant=world["tee"], location=world["b"]).on_hand == 18
    assert_ledger_matches_levels()


def test_availability_is_the_channels_published_figure_for_limited_staff_too(world, limited):
    """Not narrowed: the storefront publishes every store's pickup figure to customers."""
    response = session(limited).get("/api/v1/availability/", {"channel": "web", "sku": "TEE"})
    assert response.status_code == 200


# --- transfers ------------------------------------------------------------------------------


def test_limited_staff_see_transfers_from_or_to_their_stores_only(world, limited):
    api = session(limited)
    assert [t["id"] for t in results(api, "/api/v1/stock/transfers/")] == [world["a_to_b"].pk]
    foreign = world["b_to_c"].pk
    assert api.get(f"/api/v1/stock/transfers/{foreign}/").status_code == 404
    for step in ("ship", "cancel", "receive"):
        assert api.post(f"/api/v1/stock/transfers/{foreign}/{step}/").status_code == 404
    assert Transfer.objects.get(pk=foreign).status == "requested"


def test_limited_staff_send_from_and_receive_at_their_stores_only(world, limited):
    api = session(limited)
    lines = [{"sku": "TEE", "quantity": 1}]
    from_b = api.post(
        "/api/v1/stock/transfers/",
        {"from_location": "store-b", "to_location": "store-a", "lines": lines},
        format="json",
    )
    assert from_b.status_code == 403
    assert from_b.json()["code"] == "location_forbidden"
    assert Transfer.objects.count() == 2
    from_a = api.post(
        "/api/v1/stock/transfers/",
        {"from_location": "store-a", "to_location": "store-c", "lines": lines},
        format="json",
    )
    assert from_a.status_code == 201, from_a.json()

    a_to_b = world["a_to_b"].pk
    assert api.post(f"/api/v1/stock/transfers/{a_to_b}/ship/").status_code == 200
    refused = api.post(f"/api/v1/stock/transfers/{a_to_b}/receive/", {}, format="json")
    assert refused.status_code == 403  # B receives it, not A
    assert Transfer.objects.get(pk=a_to_b).status == "shipped"

    b_to_a = transfer_request(
        from_location_id=world["b"].pk,
        to_location_id=world["a"].pk,
        items=[TransferItem(world["tee"].pk, 1)],
    )
    assert api.post(f"/api/v1/stock/transfers/{b_to_a.pk}/ship/").status_code == 403
    assert api.post(f"/api/v1/stock/transfers/{b_to_a.pk}/cancel/").status_code == 403
    transfer_ship(transfer_id=b_to_a.pk)
    received = api.post(f"/api/v1/stock/transfers/{b_to_a.pk}/receive/", {}, format="json")
    assert received.status_code == 200, received.json()
    assert_ledger_matches_levels()


# --- orders and returns ---------------------------------------------------------------------


def test_limited_staff_see_the_orders_sold_collected_or_served_at_their_stores(world, limited):
    api = session(limited)
    shown = {o["number"] for o in results(api, "/api/v1/orders/")}
    assert shown == {world[k].number for k in ("sale_a", "pickup_a", "split")}
    at_b = results(api, "/api/v1/orders/", location="store-b")
    assert [o["number"] for o in at_b] == [world["split"].number]
    for key in ("sale_b", "ship_b"):
        order = world[key]
        assert api.get(f"/api/v1/orders/{order.pk}/").status_code == 404
        assert api.get(f"/api/v1/orders/{order.number}/").status_code == 404
        assert api.post(f"/api/v1/orders/{order.pk}/cancel/").status_code == 404
    assert Order.objects.get(pk=world["ship_b"].pk).status == "placed"
    everyone = {o.number for o in Order.objects.all()}
    assert {o["number"] for o in results(session(staff("free")), "/api/v1/orders/")} == everyone


def test_limited_staff_move_on_only_orders_touching_no_other_store(world, limited):
    api = session(limited)
    pickup = world["pickup_a"].pk
    assert api.post(f"/api/v1/orders/{pickup}/ready-for-pickup/").status_code == 200
    split = world["split"]
    assert {a.location.code for a in split.lines.get().allocations.all()} == {
        "store-a",
        "store-b",
    }
    assert api.get(f"/api/v1/orders/{split.pk}/").status_code == 200  # it serves from A
    refused = api.post(f"/api/v1/orders/{split.pk}/cancel/")
    assert refused.status_code == 403
    assert refused.json()["code"] == "location_forbidden"
    assert Order.objects.get(pk=split.pk).status == "placed"
    assert session(staff("free")).post(f"/api/v1/orders/{split.pk}/cancel/").status_code == 200


def test_limited_staff_place_orders_only_on_their_stores_stock(world, limited):
    api = session(limited)
    line = [{"sku": "TEE", "quantity": 1}]
    refusals = [
        {"channel": "pos", "fulfillment": "in_store", "location": "store-b", "lines": line},
        {"channel": "web", "fulfillment": "pickup", "pickup_location": "store-b", "lines": line},
        {"channel": "web", "fulfillment": "ship", "lines": line},  # the routing might pick B
    ]
    before = Order.objects.count()
    for body in refusals:
        response = api.post("/api/v1/orders/", body, format="json")
        assert response.status_code == 403, (body, response.json())
        assert response.json()["code"] == "location_forbidden"
    assert Order.objects.count() == before
    ship_a = {"channel": "web", "fulfillment": "ship", "location": "store-a", "lines": line}
    assert api.post("/api/v1/orders/", ship_a, format="json").status_code == 201


def test_limited_staff_take_returns_at_their_stores_of_any_order(world, limited):
    api = session(limited)
    body = {"restock": True, "lines": [{"sku": "TEE", "quantity": 1}]}
    refused = api.post(
        "/api/v1/returns/",
        {**body, "order": world["sale_a"].number, "location": "store-b"},
        format="json",
    )
    assert refused.status_code == 403
    assert refused.json()["code"] == "location_forbidden"
    assert Return.objects.count() == 0
    anywhere = api.post(  # sold at B, brought back to A: "return anywhere"
        "/api/v1/returns/",
        {**body, "order": world["sale_b"].number, "location": "store-a"},
        format="json",
    )
    assert anywhere.status_code == 201, anywhere.json()
    assert anywhere.json()["location"] == "store-a"


def test_list_endpoints_keep_a_constant_query_count_for_limited_staff(
    world, limited, django_assert_max_num_queries
):
    api = session(limited)
    urls = [
        "/api/v1/stock/",
        "/api/v1/stock/movements/",
        "/api/v1/stock/transfers/",
        "/api/v1/orders/",
    ]
    baselines = {}
    for url in urls:
        api.get(url)
        with django_assert_max_num_queries(30) as few:
            api.get(url)
        baselines[url] = len(few.captured_queries)
    for _ in range(6):
        variant = VariantFactory()
        ChannelPriceFactory(variant=variant, channel=world["sale_a"].channel)
        stock_receive(lines=[StockLine(variant.pk, world["a"].pk, 5)], reference="d")
        order_place(
            channel=world["sale_a"].channel,
            fulfillment="in_store",
            location=world["a"],
            lines=[LineRequest(variant.sku, 1)],
        )
        transfer_request(
            from_location_id=world["a"].pk,
            to_location_id=world["b"].pk,
            items=[TransferItem(variant.pk, 1)],
        )
    for url in urls:
        with django_assert_max_num_queries(baselines[url]):
            assert len(results(api, url)) > 6


# --- figures --------------------------------------------------------------------------------


def test_limited_staff_get_sales_of_their_stores_only(world, limited):
    api = session(limited)
    by_location = api.get("/api/v1/analytics/sales/", {"by": "location"}).json()
    assert [(r["key"], r["orders"], r["revenue"]) for r in by_location["results"]] == [
        ("store-a", 1, "10.00")
    ]
    assert (by_location["totals"]["orders"], by_location["totals"]["revenue"]) == (1, "10.00")
    by_channel = api.get("/api/v1/analytics/sales/", {"by": "channel"}).json()
    assert [(r["key"], r["revenue"]) for r in by_channel["results"]] == [("pos", "10.00")]
    everyone = session(staff("free")).get("/api/v1/analytics/sales/", {"by": "location"}).json()
    assert [(r["key"], r["revenue"]) for r in everyone["results"]] == [
        ("store-a", "10.00"),
        ("store-b", "20.00"),
    ]


@pytest.mark.parametrize("url", ["rfm", "clv", "retention"])
def test_member_level_figures_are_refused_to_limited_staff(world, limited, url):
    """A member buys in every store and channel: their figures cannot be cut by store."""
    assert session(limited).get(f"/api/v1/analytics/{url}/").status_code == 403
    assert session(staff("free")).get(f"/api/v1/analytics/{url}/").status_code == 200


def test_staff_limited_to_no_store_get_empty_figures_not_a_500(client, world):
    """A limit whose stores were all unpicked (or deleted) is limited to nothing: no orders,
    so empty sales and an empty dashboard. The served cents' query was compiled from an
    `IN ()` filter the ORM refuses to write (EmptyResultSet): a 500 on sales/ and the
    dashboard."""
    from analytics.jobs import nightly_run
    from orders.services import order_transition

    order_transition(order_id=world["split"].pk, action="ship")
    nightly_run(run_date=date.today())
    nowhere = staff("nowhere", stores=[])
    api = session(nowhere)
    for by in ("channel", "day", "location"):
        body = api.get("/api/v1/analytics/sales/", {"by": by}).json()
        assert body["results"] == [], by
        assert body["totals"]["orders"] == 0 and body["totals"]["by_currency"] == []
        assert (body["totals"]["revenue"], body["totals"]["refunds"]) == ("0.00", "0.00")
    for url in ("rfm", "clv", "retention"):  # member-level: refused, as to any limit
        assert api.get(f"/api/v1/analytics/{url}/").status_code == 403
    client.force_login(nowhere)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    data = chart_data(response)
    assert data["sales"]["channels"] == {} and data["top_products"] == []
    assert data["stock"] == [] and data["segments"] == []


def test_the_dashboard_of_limited_staff_counts_their_stores_only(client, world, limited):
    from analytics.jobs import nightly_run

    nightly_run(run_date=date.today())
    client.force_login(limited)
    response = client.get("/dashboard/")
    assert response.status_code == 200
    data = chart_data(response)
    assert sum(sum(series) for series in data["sales"]["channels"].values()) == 10.0
    assert [(p["sku"], p["revenue"]) for p in data["top_products"]] == [("TEE", 10.0)]
    assert [row["location_code"] for row in data["stock"]] == ["store-a"]
    assert data["segments"] == [] and data["clv"]["counts"] == []
    html = response.content.decode()
    assert 'id="chart-segments"' not in html and 'id="retention-heatmap"' not in html
    assert 'id="store-limit-note"' in html and "store-a" in html

    client.force_login(staff("free"))
    data = chart_data(client.get("/dashboard/"))
    assert sum(sum(series) for series in data["sales"]["channels"].values()) == 30.0
    assert [row["location_code"] for row in data["stock"]] == ["store-a", "store-b"]


# --- the admin ------------------------------------------------------------------------------


def shown(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


def test_admin_pages_list_only_their_stores_rows(client, world, limited):
    client.force_login(limited)
    assert {lv.location.code for lv in shown(client, "/admin/inventory/stocklevel/")} == {"store-a"}
    assert {m.location.code for m in shown(client, "/admin/inventory/stockmovement/")} == {
        "store-a"
    }
    assert [t.pk for t in shown(client, "/admin/inventory/transfer/")] == [world["a_to_b"].pk]
    assert {o.pk for o in shown(client, "/admin/orders/order/")} == {
        world[k].pk for k in ("sale_a", "pickup_a", "split")
    }
    asking_for_b = shown(client, "/admin/inventory/stocklevel/", location__id__exact=world["b"].pk)
    assert {lv.location.code for lv in asking_for_b} <= {"store-a"}
    assert shown(client, "/admin/orders/order/", at="store-b") == [world["split"]]
    returned = [
        order_return(
            order_id=world[sale].pk,
            location=world[at],
            lines=[LineRequest("TEE", 1)],
            restock=True,
        )
        for sale, at in (("sale_a", "b"), ("sale_b", "a"))
    ]
    assert shown(client, "/admin/orders/return/") == [returned[1]]


def test_an_order_page_shows_limited_staff_only_their_stores_returns_and_ledger(
    client, world, limited
):
    """Sold at A, brought back at B and put on B's shelf. A's manager opens the order (it is
    A's sale) and saw B's return in its returns and B's ledger row (TEE@store-b +1) in its
    stock movements, while the return list and the ledger list hid them."""
    back_at_b = order_return(
        order_id=world["sale_a"].pk,
        location=world["b"],
        lines=[LineRequest("TEE", 1)],
        restock=True,
    )
    url = f"/admin/orders/order/{world['sale_a'].pk}/change/"

    def returns_and_ledger(user):
        client.force_login(user)
        page = client.get(url)
        assert page.status_code == 200
        [returns] = [
            inline.formset.queryset
            for inline in page.context["inline_admin_formsets"]
            if inline.opts.model is Return
        ]
        return list(returns), page.content.decode()

    returns, html = returns_and_ledger(limited)
    assert returns == []
    assert "TEE@store-a -1" in html  # the sale at A, theirs
    assert "TEE@store-b" not in html
    assert "Store store-b" not in html
    returns, html = returns_and_ledger(staff("free"))
    assert returns == [back_at_b]
    assert "TEE@store-a -1" in html and "TEE@store-b +1" in html


def test_admin_location_filters_offer_only_their_stores(client, world):
    order_return(
        order_id=world["sale_b"].pk,
        location=world["a"],
        lines=[LineRequest("TEE", 1)],
        restock=True,
    )
    client.force_login(staff("a-and-c", stores=[world["a"], world["c"]]))
    for url in ("/admin/inventory/stocklevel/", "/admin/orders/order/", "/admin/orders/return/"):
        html = client.get(url).content.decode()
        assert "Store store-c" in html, url  # only ever named by the filter here
        assert "Store store-b" not in html, url
    client.force_login(staff("free"))
    assert "Store store-b" in client.get("/admin/inventory/stocklevel/").content.decode()


def test_another_stores_rows_answer_as_missing_in_the_admin(client, world, limited):
    level_b = StockLevel.objects.get(variant=world["tee"], location=world["b"])
    movement_b = StockMovement.objects.filter(location=world["b"]).first()
    pages = [
        f"/admin/inventory/stocklevel/{level_b.pk}/change/",
        f"/admin/inventory/stockmovement/{movement_b.pk}/change/",
        f"/admin/inventory/transfer/{world['b_to_c'].pk}/change/",
        f"/admin/orders/order/{world['sale_b'].pk}/change/",
    ]
    client.force_login(limited)
    for page in pages:
        response = client.get(page)
        assert response.status_code == 302, page
        assert response["Location"] == "/admin/"
        assert "store-b" not in client.get(response["Location"]).content.decode()
    client.force_login(staff("free"))
    for page in pages:
        assert client.get(page).status_code == 200, page


def test_admin_adjust_form_and_count_import_refuse_other_stores(client, world, limited):
    client.force_login(limited)
    form = client.get("/admin/inventory/stocklevel/adjust/").context["form"]
    assert [loc.code for loc in form.fields["location"].queryset] == ["store-a"]
    before = StockMovement.objects.count()
    body = {"sku": "TEE", "kind": "delta", "quantity": 5, "reason": "receipt"}
    refused = client.post("/admin/inventory/stocklevel/adjust/", {**body, "location": "store-b"})
    assert refused.status_code == 200
    assert refused.context["form"].errors["location"]
    assert StockMovement.objects.count() == before
    done = client.post("/admin/inventory/stocklevel/adjust/", {**body, "location": "store-a"})
    assert done.status_code == 302

    from django.core.files.uploadedfile import SimpleUploadedFile

    import_page = client.get("/admin/inventory/stocklevel/import/").context["form"]
    csv_format = next(v for v, label in import_page.fields["format"].choices if label == "csv")
    sheet = "sku,location,counted\nTEE,store-a,5\nTEE,store-b,0\n"
    preview = client.post(
        "/admin/inventory/stocklevel/import/",
        {
            "import_file": SimpleUploadedFile("count.csv", sheet.encode(), "text/csv"),
            "format": csv_format,
        },
    )
    assert preview.status_code == 200
    assert preview.context.get("confirm_form") is None
    result = preview.context["result"]
    assert len(result.invalid_rows) + len(result.row_errors()) == 1
    assert "may not count stock at" in preview.content.decode()
    assert StockMovement.objects.count() == before + 1
    assert StockLevel.objects.get(variant=world["tee"], location=world["b"]).on_hand == 18
    assert_ledger_matches_levels()


def test_admin_actions_refuse_steps_at_other_stores(client, world, limited):
    client.force_login(limited)
    a_to_b = world["a_to_b"]
    transfer_ship(transfer_id=a_to_b.pk)
    response = client.post(
        "/admin/inventory/transfer/",
        {"action": "receive_as_shipped", "_selected_action": [a_to_b.pk]},
        follow=True,
    )
    assert any("limited to other stores" in str(m) for m in response.context["messages"])
    assert Transfer.objects.get(pk=a_to_b.pk).status == "shipped"

    split = world["split"]
    response = client.post(
        "/admin/orders/order/",
        {"action": "cancel", "_selected_action": [split.pk, world["sale_b"].pk]},
        follow=True,
    )
    assert any("outside your staff account" in str(m) for m in response.context["messages"])
    assert Order.objects.get(pk=split.pk).status == "placed"
    pickup = world["pickup_a"]
    client.post("/admin/orders/order/", {"action": "cancel", "_selected_action": [pickup.pk]})
    assert Order.objects.get(pk=pickup.pk).status == "cancelled"


def staff_page_rows(user, *, locations, **fields) -> dict:
    """What a staff member's page posts besides the boxes: their groups, permissions and join
    date as they are, and one store-limit row on `locations` (`fields` over it)."""
    return {
        "groups": [g.pk for g in user.groups.all()],
        "user_permissions": [p.pk for p in user.user_permissions.all()],
        "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        "store_limit-TOTAL_FORMS": "1",
        "store_limit-MIN_NUM_FORMS": "0",
        "store_limit-MAX_NUM_FORMS": "1",
        "store_limit-0-user": user.pk,
        "store_limit-0-locations": [location.pk for location in locations],
        **fields,
    }


def test_a_superuser_sets_a_store_limit_on_the_staff_members_page(client, world):
    member = staff("new-hire")
    client.force_login(staff("root", superuser=True))
    page = client.get(f"/admin/auth/user/{member.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if name not in ("password", "last_login", "date_joined", "groups", "user_permissions")
        and value is not None
    }
    data.update(
        staff_page_rows(member, locations=[world["a"]], **{"store_limit-INITIAL_FORMS": "0"})
    )
    saved = client.post(f"/admin/auth/user/{member.pk}/change/", data)
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    assert store_limit(user=type(member).objects.get(pk=member.pk)) == {world["a"].pk}


def test_member_pages_show_their_stores_orders_and_no_whole_business_figures(
    client, world, limited
):
    """Member scores, cohorts and the nightly runs' records (how many members bought
    anywhere, the fitted spend model of the whole business) are refused to store-limited
    staff; the runs' pages were not."""
    from analytics.jobs import nightly_run
    from customers.services import Contact, member_upsert

    member, _ = member_upsert(contact=Contact(email="both@stores.example"), channel=None)
    Order.objects.filter(pk__in=[world["sale_a"].pk, world["sale_b"].pk]).update(member=member)
    run = nightly_run(run_date=date.today())
    whole_business = (
        "/admin/analytics/memberscore/",
        "/admin/analytics/cohortretention/",
        "/admin/analytics/nightlyrun/",
        f"/admin/analytics/nightlyrun/{run.pk}/change/",
    )
    client.force_login(limited)
    page = client.get(f"/admin/customers/member/{member.pk}/change/").content.decode()
    assert world["sale_a"].number in page and world["sale_b"].number not in page
    for url in whole_business:
        assert client.get(url).status_code == 403, url
    assert "/admin/analytics/" not in client.get("/admin/").content.decode()
    client.force_login(staff("free"))
    page = client.get(f"/admin/customers/member/{member.pk}/change/").content.decode()
    assert world["sale_a"].number in page and world["sale_b"].number in page
    for url in whole_business:
        assert client.get(url).status_code == 200, url


def test_a_members_points_scores_and_data_requests_keep_other_stores_from_limited_staff(
    client, world, limited
):
    """The member bought at store A and at store B, earning points on each. Store-A staff see
    every points entry (the balance is their sum) but not the number of B's order, in the API
    and on the admin page; they get no nightly scores (figured from every store's orders);
    export and erase cover every store's orders, so they are refused, and nothing is done."""
    from analytics.jobs import nightly_run
    from customers.models import Member, MemberEvent
    from customers.services import Contact, member_upsert
    from omnichannel.models import Channel

    member, _ = member_upsert(contact=Contact(email="both@stores.example"), channel=None)
    pos = Channel.objects.get(code="pos")
    sale_a, sale_b = (
        order_place(
            channel=pos,
            fulfillment="in_store",
            location=world[store],
            member=member,
            lines=[LineRequest("TEE", quantity)],
        )
        for store, quantity in (("a", 1), ("b", 3))
    )
    nightly_run(run_date=date.today())
    from django.contrib.auth.models import Permission

    limited.user_permissions.add(Permission.objects.get(codename="delete_member"))
    limited = type(limited).objects.get(pk=limited.pk)  # permissions read afresh
    assert limited.has_perm("customers.delete_member")
    api = session(limited)
    ledger = api.get(f"/api/v1/members/{member.pk}/points/").json()["results"]
    assert [(e["order"], e["points"]) for e in ledger] == [(None, 30), (sale_a.number, 10)]
    detail = api.get(f"/api/v1/members/{member.pk}/").json()
    assert (detail["points"], detail["segment"], detail["clv"], detail["p_alive"]) == (
        40,
        None,
        None,
        None,
    )
    for response in (
        api.get(f"/api/v1/members/{member.pk}/export/"),
        api.post(f"/api/v1/members/{member.pk}/erase/"),
    ):
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
    assert Member.objects.get(pk=member.pk).email == "both@stores.example"
    assert not MemberEvent.objects.exists()
    client.force_login(limited)
    page = client.get(f"/admin/customers/member/{member.pk}/change/").content.decode()
    assert sale_a.number in page and sale_b.number not in page
    assert "another store&#x27;s order" in page

    free = session(staff("free", superuser=True))
    ledger = free.get(f"/api/v1/members/{member.pk}/points/").json()["results"]
    assert [e["order"] for e in ledger] == [sale_b.number, sale_a.number]
    assert free.get(f"/api/v1/members/{member.pk}/").json()["segment"] is not None
    assert free.get(f"/api/v1/members/{member.pk}/export/").status_code == 200


def test_a_parcel_sent_from_two_stores_counts_for_each_the_part_it_served(client, world):
    """The web order for two mugs is served one from A and one from B. Each store's manager
    counts the mug their store sent (10.00), in the sales API and on the dashboard, so the
    stores' figures add up to the business's (each counted the whole 20.00 before)."""
    from orders.services import order_transition

    split = world["split"]
    assert split.total == Decimal("20.00")
    order_transition(order_id=split.pk, action="ship")
    only_a = staff("only-a", stores=[world["a"]])
    only_b = staff("only-b", stores=[world["b"]])
    free = staff("free")

    def split_sales(user):
        body = session(user).get("/api/v1/analytics/sales/", {"by": "channel"}).json()
        web = {r["key"]: r for r in body["results"]}["web"]
        return Decimal(web["revenue"]), web["orders"]

    assert split_sales(free) == (Decimal("20.00"), 1)
    assert split_sales(only_a) == split_sales(only_b) == (Decimal("10.00"), 1)

    def dashboard_web_and_mugs(user):
        client.force_login(user)
        data = chart_data(client.get("/dashboard/"))
        mugs = {p["sku"]: p["revenue"] for p in data["top_products"]}.get("MUG")
        return sum(data["sales"]["channels"]["web"]), mugs

    assert dashboard_web_and_mugs(free) == (20.0, 20.0)
    assert dashboard_web_and_mugs(only_a) == dashboard_web_and_mugs(only_b) == (10.0, 10.0)

    # One mug comes back: which store's is not recorded, so each counts half of the refund,
    # as it counts half of the revenue (each counted all of it: 20.00 of refunds in all).
    order_return(
        order_id=split.pk, location=world["a"], lines=[LineRequest("MUG", 1)], restock=True
    )

    def refunds(user):
        return Decimal(session(user).get("/api/v1/analytics/sales/").json()["totals"]["refunds"])

    assert refunds(free) == Decimal("10.00")
    assert refunds(only_a) == refunds(only_b) == Decimal("5.00")


def test_a_returned_line_counts_at_the_store_that_served_it_not_at_the_other(web):
    """A parcel of a tee sent from store A and a mug from store B; the mug comes back. Each
    return was shared by the order's served share, whatever line came back: A's manager was
    shown 5.00 of refunds for goods A never sent, B's 5.00 for its 10.00. A returned line
    now counts where its units were served (in proportion only for a line itself split),
    in as many queries for more returns."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orders.services import order_transition

    a, b = LocationFactory(code="store-a"), LocationFactory(code="store-b")
    ChannelLocationFactory(channel=web, location=a, priority=1)
    ChannelLocationFactory(channel=web, location=b, priority=2)
    tee, mug = VariantFactory(sku="TEE"), VariantFactory(sku="MUG")
    for variant in (tee, mug):
        ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("10.00"))
    stock_receive(
        lines=[StockLine(tee.pk, a.pk, 3), StockLine(mug.pk, b.pk, 3)], reference="delivery"
    )

    def parcel():
        placed = order_place(
            channel=web, fulfillment="ship", lines=[LineRequest("TEE", 1), LineRequest("MUG", 1)]
        )
        served = {
            line.sku: {x.location_id for x in line.allocations.all()} for line in placed.lines.all()
        }
        assert served == {"TEE": {a.pk}, "MUG": {b.pk}}
        order_transition(order_id=placed.pk, action="ship")
        return placed

    first = parcel()
    order_return(order_id=first.pk, location=b, lines=[LineRequest("MUG", 1)], restock=True)
    only_a, only_b, free = staff("only-a", stores=[a]), staff("only-b", stores=[b]), staff("free")

    def figures(user):
        totals = session(user).get("/api/v1/analytics/sales/").json()["totals"]
        return totals["revenue"], totals["refunds"]

    assert figures(only_a) == ("10.00", "0.00")
    assert figures(only_b) == ("10.00", "10.00")
    assert figures(free) == ("20.00", "10.00")

    def return_rate(user):
        return session(user).get("/api/v1/analytics/sales/").json()["totals"]["return_rate"]

    # The return rate counts the same returns: A sent nothing that came back (it counted
    # the mug's return, whose refund it did not).
    assert (return_rate(only_a), return_rate(only_b), return_rate(free)) == (0.0, 1.0, 1.0)

    def queries(user):
        with CaptureQueriesContext(connection) as captured:
            session(user).get("/api/v1/analytics/sales/")
        return len(captured.captured_queries)

    before = queries(only_a)
    for _ in range(2):  # the tee of another parcel comes back at A, the mug at B
        more = parcel()
        order_return(order_id=more.pk, location=a, lines=[LineRequest("TEE", 1)], restock=True)
        order_return(order_id=more.pk, location=b, lines=[LineRequest("MUG", 1)], restock=True)
    assert queries(only_a) == before
    assert figures(only_a) == ("30.00", "20.00")
    assert figures(only_b) == ("30.00", "30.00")
    assert (return_rate(only_a), return_rate(only_b)) == (0.6667, 1.0)


def test_a_store_that_served_a_whole_line_counts_all_of_it_on_either_database(web):
    """Store A sent all 3 tees of an order paid 10.00 and 1 of 2 mugs of one paid 0.01:
    10.005, so 10.01. Dividing before multiplying made the tees 9.9999999999999999 on
    PostgreSQL (10.00), while SQLite said 10.01."""
    from analytics.selectors import sales
    from orders.services import order_transition

    a, b = LocationFactory(code="store-a"), LocationFactory(code="store-b")
    ChannelLocationFactory(channel=web, location=a, priority=1)
    ChannelLocationFactory(channel=web, location=b, priority=2)
    tee, mug = VariantFactory(sku="TEE"), VariantFactory(sku="MUG")
    ChannelPriceFactory(variant=tee, channel=web, amount=Decimal("3.34"))
    ChannelPriceFactory(variant=mug, channel=web, amount=Decimal("0.01"))
    stock_receive(
        lines=[StockLine(tee.pk, a.pk, 3), StockLine(mug.pk, a.pk, 1), StockLine(mug.pk, b.pk, 1)],
        reference="delivery",
    )
    tees = order_place(
        channel=web, fulfillment="ship", lines=[LineRequest("TEE", 3)], discount=Decimal("0.02")
    )
    mugs = order_place(
        channel=web, fulfillment="ship", lines=[LineRequest("MUG", 2)], discount=Decimal("0.01")
    )
    for order in (tees, mugs):
        order_transition(order_id=order.pk, action="ship")
    today = date.today()
    counted = sales(start=today, end=today, by="channel", limit={a.pk})["totals"]["revenue"]
    assert Decimal(counted) == Decimal("10.01")


def _member_with_orders(world, count: int):
    from customers.models import Member

    member = Member.objects.create(email="regular@stores.example")
    stock_receive(lines=[StockLine(world["tee"].pk, world["a"].pk, count)], reference="delivery")
    pos = world["sale_a"].channel
    for _ in range(count):
        order_place(
            channel=pos,
            fulfillment="in_store",
            location=world["a"],
            member=member,
            lines=[LineRequest("TEE", 1)],
        )
    return member


def _more_orders(world, member, count: int) -> None:
    stock_receive(lines=[StockLine(world["tee"].pk, world["a"].pk, count)], reference="delivery")
    for _ in range(count):
        order_place(
            channel=world["sale_a"].channel,
            fulfillment="in_store",
            location=world["a"],
            member=member,
            lines=[LineRequest("TEE", 1)],
        )


def listed_orders(page) -> list[int]:
    [orders] = [f for f in page.context["inline_admin_formsets"] if f.opts.model is Order]
    return [form.instance.pk for form in orders.formset]


@pytest.mark.parametrize("limited_to_a", [False, True])
def test_the_member_page_reads_its_orders_in_a_constant_number_of_queries(
    client, world, limited_to_a, django_assert_max_num_queries
):
    """Each order listed on the member's page read its channel in a query of its own."""
    client.force_login(staff("desk", stores=[world["a"]] if limited_to_a else None))
    member = _member_with_orders(world, 1)
    url = f"/admin/customers/member/{member.pk}/change/"
    client.get(url)
    with django_assert_max_num_queries(60) as few:
        assert client.get(url).status_code == 200
    _more_orders(world, member, 5)
    with django_assert_max_num_queries(len(few.captured_queries)):
        page = client.get(url)
    assert page.content.decode().count("/admin/orders/order/") >= 6


def test_the_member_page_lists_the_latest_orders_and_links_to_all_of_them(
    client, world, monkeypatch
):
    """It listed every order the member ever placed, one page row each. It lists the latest
    (20; 2 here), and links to the order list filtered by the member, where a store-limited
    staff member finds their stores' orders of the member alone."""
    from customers.admin import OrderInline

    monkeypatch.setattr(OrderInline, "latest", 2)
    member = _member_with_orders(world, 3)
    sale_b = order_place(
        channel=world["sale_a"].channel,
        fulfillment="in_store",
        location=world["b"],
        member=member,
        lines=[LineRequest("TEE", 1)],
    )
    theirs = list(Order.objects.filter(member=member).order_by("-created_at", "-pk"))
    client.force_login(staff("free"))
    page = client.get(f"/admin/customers/member/{member.pk}/change/")
    listed = listed_orders(page)
    assert listed == [o.pk for o in theirs[:2]]
    all_of_them = f"/admin/orders/order/?member__id__exact={member.pk}"
    assert all_of_them in page.content.decode()
    assert {o.pk for o in shown(client, all_of_them)} == {o.pk for o in theirs}
    client.force_login(staff("a-desk", stores=[world["a"]]))
    page = client.get(f"/admin/customers/member/{member.pk}/change/")
    listed = listed_orders(page)
    assert listed == [o.pk for o in theirs if o.pk != sale_b.pk][:2]
    assert {o.pk for o in shown(client, all_of_them)} == {o.pk for o in theirs} - {sale_b.pk}


def test_limited_staff_are_not_told_which_other_stores_a_member_shops_at(client, world):
    """The member's `stores` (API) and the places they were seen (admin page, with first and
    last visits) named every store: store-A staff learnt the person shops at B, where the
    order numbers of B are kept from them. They see their stores (and the web shop); staff
    without a limit and the tills see every store, as before."""
    from customers.models import Member
    from customers.services import member_seen
    from omnichannel.models import Channel
    from tests.conftest import as_client
    from tests.factories import make_api_client

    pos, web = Channel.objects.get(code="pos"), Channel.objects.get(code="web")
    member = Member.objects.create(email="both@stores.example")
    for location in (world["a"], world["b"], None):
        member_seen(member=member, channel=web if location is None else pos, location=location)
    care = Permission.objects.filter(codename__in=["add_member", "change_member"])
    limited, free = staff("a-desk", stores=[world["a"]]), staff("free")
    for user in (limited, free):
        user.user_permissions.add(*care)
    limited, free = (type(user).objects.get(pk=user.pk) for user in (limited, free))
    _, token = make_api_client(pos, world["a"], name="till-a")
    for who, api, stores in (
        ("limited", session(limited), ["store-a"]),
        ("free", session(free), ["store-a", "store-b"]),
        ("till", as_client(token), ["store-a", "store-b"]),
    ):
        detail = api.get(f"/api/v1/members/{member.pk}/").json()
        assert detail["stores"] == stores, who
        assert detail["channels"] == ["pos", "web"], who
        upsert = api.post("/api/v1/members/", {"email": "both@stores.example"}, format="json")
        assert upsert.json()["stores"] == stores, who
        if who != "till":
            [listed] = results(api, "/api/v1/members/", email="both@stores.example")
            assert listed["stores"] == stores, who
    other = Member.objects.create(phone="+33612345678")
    merged = session(limited).post(
        f"/api/v1/members/{member.pk}/merge/", {"other": other.pk}, format="json"
    )
    assert merged.json()["stores"] == ["store-a"]

    def seen_on_the_page(user):
        client.force_login(user)
        page = client.get(f"/admin/customers/member/{member.pk}/change/")
        [seen] = [f for f in page.context["inline_admin_formsets"] if f.opts.model is MemberChannel]
        return sorted((f.instance.channel.code, f.instance.location_id) for f in seen.formset)

    everything = staff("free-desk")
    everything.user_permissions.add(*Permission.objects.filter(codename="view_memberchannel"))
    limited.user_permissions.add(*Permission.objects.filter(codename="view_memberchannel"))
    assert seen_on_the_page(type(limited).objects.get(pk=limited.pk)) == [
        ("pos", world["a"].pk),
        ("web", None),
    ]
    assert seen_on_the_page(type(everything).objects.get(pk=everything.pk)) == [
        ("pos", world["a"].pk),
        ("pos", world["b"].pk),
        ("web", None),
    ]


def limited_with(world, *codenames):
    """A staff member limited to store A, with the model permissions `codenames`."""
    user = staff("a-broad")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    StaffStoreLimit.objects.create(user=user).locations.set([world["a"]])
    return type(user).objects.get(pk=user.pk)


def test_limited_staff_cannot_take_over_another_stores_till_by_rotating_its_token(
    client, world, pos
):
    """Store-A staff who may change API clients ran "Give the selected clients new tokens" on
    store B's till: the admin showed them B's new token, with which they adjusted B's stock
    (and B's till was locked out). They see, rotate and revoke their stores' tills only; a
    client of no store (a channel's system) is for staff without a limit."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    till_a, _ = make_api_client(pos, world["a"], name="till-a")
    till_b, _ = make_api_client(pos, world["b"], name="till-b")
    web_shop, _ = make_api_client(Channel.objects.get(code="web"), name="storefront")
    user = limited_with(world, "view_apiclient", "change_apiclient")
    client.force_login(user)
    assert [c.pk for c in shown(client, "/admin/omnichannel/apiclient/")] == [till_a.pk]
    for other in (till_b, web_shop):
        page = client.get(f"/admin/omnichannel/apiclient/{other.pk}/change/")
        assert page.status_code == 302 and page["Location"] == "/admin/"
    level = StockLevel.objects.get(variant=world["tee"], location=world["b"])
    for action in ("rotate_token", "revoke"):
        response = client.post(
            "/admin/omnichannel/apiclient/",
            {"action": action, "_selected_action": [till_b.pk, web_shop.pk]},
            follow=True,
        )
        tokens = [
            str(m).rsplit(" ", 1)[-1] for m in response.context["messages"] if "oc_" in str(m)
        ]
        assert tokens == [], "A's staff were handed another store's till token"
        for token in tokens:
            as_client(token).post(
                "/api/v1/stock/adjustments/",
                {"sku": "TEE", "location": "store-b", "delta": -5, "reason": "damage"},
                format="json",
            )
    assert StockLevel.objects.get(pk=level.pk).on_hand == level.on_hand, "changed at B"
    for other in (till_b, web_shop):
        fresh = ApiClient.objects.get(pk=other.pk)
        assert (fresh.key_hash, fresh.revoked_at) == (other.key_hash, None)
    # Their own store's till: as before.
    client.post(
        "/admin/omnichannel/apiclient/",
        {"action": "rotate_token", "_selected_action": [till_a.pk]},
    )
    assert ApiClient.objects.get(pk=till_a.pk).key_hash != till_a.key_hash


def test_limited_staff_cannot_make_an_api_client_for_another_store(client, world, pos):
    """The add page offered every location: A's staff made a till at B (or a storefront
    client of no store, acting for the whole channel) and got its token. They add tills at
    their stores only."""
    user = limited_with(world, "view_apiclient", "add_apiclient", "change_apiclient")
    client.force_login(user)
    page = client.get("/admin/omnichannel/apiclient/add/")
    offered = {str(c[0]) for c in page.context["adminform"].form.fields["location"].choices}
    assert offered == {"", str(world["a"].pk)}
    web = Channel.objects.get(code="web")
    for channel, location in ((pos, world["b"].pk), (web, "")):
        refused = client.post(
            "/admin/omnichannel/apiclient/add/",
            {"name": "mine", "channel": channel.pk, "location": location},
        )
        assert refused.status_code == 200
        assert "location" in refused.context["adminform"].form.errors
    assert not ApiClient.objects.exists()
    made = client.post(
        "/admin/omnichannel/apiclient/add/",
        {"name": "till at a", "channel": pos.pk, "location": world["a"].pk},
    )
    assert made.status_code == 302
    assert ApiClient.objects.get().location == world["a"]
    # Without a limit: any store, or none for a channel's own system.
    client.force_login(staff("free", superuser=True))
    page = client.get("/admin/omnichannel/apiclient/add/")
    assert str(world["b"].pk) in {
        str(c[0]) for c in page.context["adminform"].form.fields["location"].choices
    }
    made = client.post(
        "/admin/omnichannel/apiclient/add/", {"name": "storefront", "channel": web.pk}
    )
    assert made.status_code == 302


def test_a_pickup_order_naming_another_store_as_location_does_not_record_the_member_there(
    world,
):
    """Store-A staff placed a pickup at A (allowed) with a stray `location: store-b`: the
    order ignores it (location null), but the member was recorded as seen at store B, a
    store they never visited, and B's staff and the unlimited ones then read `stores:
    ["store-b"]`. The member is seen where the order happens: its pickup store."""
    user = staff("a-desk", stores=[world["a"]])
    body = {
        "channel": "web",
        "fulfillment": "pickup",
        "pickup_location": "store-a",
        "location": "store-b",
        "member": {"email": "new@shop.example"},
        "lines": [{"sku": "TEE", "quantity": 1}],
    }
    placed = session(user).post("/api/v1/orders/", body, format="json")
    assert placed.status_code == 201, placed.json()
    assert (placed.json()["pickup_location"], placed.json()["location"]) == ("store-a", None)
    seen = MemberChannel.objects.filter(member__email="new@shop.example")
    assert set(seen.values_list("location__code", flat=True)) == {"store-a"}
    again = session(user).post(
        "/api/v1/orders/", {**body, "member": placed.json()["member"]}, format="json"
    )
    assert again.status_code == 201, again.json()
    assert set(seen.values_list("location__code", flat=True)) == {"store-a"}


def test_member_history_does_not_tell_limited_staff_the_member_shops_at_another_store(
    client, world, pos
):
    """A member's other stores are kept from store-A staff (the API's `stores`, the places
    seen on the member page), but the member's History page named the API client that made
    each change: "till-b [pos/store-b]". Another store's till is shown by its channel only;
    their stores' tills, a channel's own system and everything for staff without a limit
    are named as before."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    _, token_b = make_api_client(pos, world["b"], name="till-b")
    _, token_a = make_api_client(pos, world["a"], name="till-a")
    _, token_web = make_api_client(Channel.objects.get(code="web"), name="storefront")
    created = as_client(token_b).post(
        "/api/v1/members/", {"email": "only-b@shop.example"}, format="json"
    )
    assert created.status_code == 201, created.json()
    member_id = created.json()["id"]
    for token, field in ((token_a, "first_name"), (token_web, "last_name")):
        changed = as_client(token).post(
            "/api/v1/members/",
            {"email": "only-b@shop.example", field: "Ann"},
            format="json",
        )
        assert changed.status_code == 200, changed.json()
    user = limited_with(world, "view_member", "change_member")
    client.force_login(user)
    assert session(user).get(f"/api/v1/members/{member_id}/").json()["stores"] == ["store-a"]
    page = client.get(f"/admin/customers/member/{member_id}/history/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "store-b" not in html and "till-b" not in html
    assert "a till of another store [pos]" in html
    assert "till-a [pos/store-a]" in html and "storefront [web]" in html
    client.force_login(staff("free", superuser=True))
    html = client.get(f"/admin/customers/member/{member_id}/history/").content.decode()
    assert "till-b [pos/store-b]" in html and "till-a [pos/store-a]" in html


def feed_rows(feeds, **values) -> dict:
    """The POST fields of a channel page's existing feed rows (`feeds`: its inline admin
    formset), each row's `values` (field name: function of the feed) beside its keys."""
    prefix, data = feeds.formset.prefix, {}
    for i, form in enumerate(feeds.formset.initial_forms):
        feed = form.instance
        data.update(
            {
                f"{prefix}-{i}-id": feed.pk,
                f"{prefix}-{i}-channel": feed.channel_id,
                f"{prefix}-{i}-location": feed.location_id,
                **{f"{prefix}-{i}-{name}": value(feed) for name, value in values.items()},
            }
        )
    return data


def test_limited_staff_cannot_change_another_stores_settings(client, world, web):
    """The locations page was not store-limited: store-A staff who may change locations
    turned off pickup and shipping at store B (the storefront stopped offering B, B's parcels
    stopped), and a channel's page let them change B's safety stock and priority. Every
    location stays readable; another store's settings and feed are shown read-only."""
    user = limited_with(
        world,
        "view_location",
        "change_location",
        "delete_location",
        "view_channel",
        "change_channel",
        "view_channellocation",
        "change_channellocation",
        "add_channellocation",
        "delete_channellocation",
    )
    client.force_login(user)
    a, b = world["a"], world["b"]
    assert {loc.code for loc in shown(client, "/admin/omnichannel/location/")} >= {
        "store-a",
        "store-b",
    }
    page = client.get(f"/admin/omnichannel/location/{b.pk}/change/")
    assert page.status_code == 200 and not page.context["has_change_permission"]
    data = {"code": "store-b", "name": "renamed by store A", "kind": "store"}
    assert client.post(f"/admin/omnichannel/location/{b.pk}/change/", data).status_code == 403
    assert (
        client.post(f"/admin/omnichannel/location/{b.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    b.refresh_from_db()
    assert (b.name, b.ships, b.pickup) == ("Store store-b", True, True)
    # Their own store: as before.
    saved = client.post(
        f"/admin/omnichannel/location/{a.pk}/change/",
        {"code": "store-a", "name": "Our store", "kind": "store", "ships": "on", "pickup": "on"},
    )
    assert saved.status_code == 302, saved.context["adminform"].form.errors
    a.refresh_from_db()
    assert a.name == "Our store"

    # A channel's feeds: B's row read-only, A's changed, no new row at B.
    url = f"/admin/omnichannel/channel/{web.pk}/change/"
    page = client.get(url)
    [feeds] = [f for f in page.context["inline_admin_formsets"] if f.opts.model is ChannelLocation]
    by_location = {f.instance.location_id: f for f in feeds.formset.initial_forms}
    for name in ("priority", "location", "safety_stock", "DELETE"):
        assert by_location[b.pk].fields[name].disabled, name
    assert not by_location[a.pk].fields["safety_stock"].disabled
    prefix = feeds.formset.prefix
    data = {
        "code": web.code,
        "name": web.name,
        "kind": web.kind,
        "currency": web.currency,
        "points_per_unit": web.points_per_unit,
        f"{prefix}-TOTAL_FORMS": 2,
        f"{prefix}-INITIAL_FORMS": 2,
    }
    data.update(
        feed_rows(
            feeds,
            priority=lambda feed: 9,
            safety_stock=lambda feed: 7,
            DELETE=lambda feed: "on" if feed.location_id == b.pk else "",
        )
    )
    saved = client.post(url, data)
    assert saved.status_code == 302, saved.context["inline_admin_formsets"][0].formset.errors
    feeds = {f.location_id: (f.priority, f.safety_stock) for f in web.feeds.all()}
    assert feeds == {a.pk: (9, 7), b.pk: (2, 0)}
    data.update({f"{prefix}-TOTAL_FORMS": 3, f"{prefix}-2-channel": web.pk})
    data.update({f"{prefix}-2-location": world["c"].pk, f"{prefix}-2-priority": 3})
    data.update({f"{prefix}-2-safety_stock": 0})
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert not web.feeds.filter(location=world["c"]).exists()


def test_limited_staff_add_no_location_nor_channel_and_change_no_channels_own_settings(
    client, world, web
):
    """A channel's currency and points rate hold for every store it sells from, and a new
    location is outside any store limit: store-A staff who may add locations and channels
    and change channels add neither, and see the channel's own settings read-only (what a
    page sends for them is ignored); their store's feed row is still theirs to change."""
    user = limited_with(
        world,
        "add_location",
        "view_location",
        "add_channel",
        "view_channel",
        "change_channel",
        "view_channellocation",
        "change_channellocation",
    )
    client.force_login(user)
    assert client.get("/admin/omnichannel/location/add/").status_code == 403
    made = client.post("/admin/omnichannel/location/add/", {"code": "new", "kind": "store"})
    assert made.status_code == 403
    assert client.get("/admin/omnichannel/channel/add/").status_code == 403
    assert not Location.objects.filter(code="new").exists()

    url = f"/admin/omnichannel/channel/{web.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert set(page.context["adminform"].readonly_fields) == {
        "code",
        "name",
        "kind",
        "currency",
        "points_per_unit",
    }
    [feeds] = [f for f in page.context["inline_admin_formsets"] if f.opts.model is ChannelLocation]
    prefix = feeds.formset.prefix
    data = {
        "code": "hijacked",
        "name": "Renamed by store A",
        "currency": "GBP",
        "points_per_unit": "99",
        f"{prefix}-TOTAL_FORMS": len(feeds.formset.initial_forms),
        f"{prefix}-INITIAL_FORMS": len(feeds.formset.initial_forms),
    }
    data.update(feed_rows(feeds, priority=lambda feed: feed.priority, safety_stock=lambda feed: 4))
    before = (web.code, web.name, web.currency, web.points_per_unit)
    saved = client.post(url, data)
    assert saved.status_code == 302
    web.refresh_from_db()
    assert (web.code, web.name, web.currency, web.points_per_unit) == before
    assert web.feeds.get(location=world["a"]).safety_stock == 4
    assert web.feeds.get(location=world["b"]).safety_stock == 0

    # Staff without a limit: as before.
    head_office = staff("head-office")
    head_office.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_channel", "change_channel", "view_channel"])
    )
    client.force_login(head_office)
    assert client.get("/admin/omnichannel/channel/add/").status_code == 200
    assert client.get(url).context["adminform"].readonly_fields == ()


def test_limited_staff_cannot_delete_a_channel_and_every_stores_feed(client, world):
    """Store-A staff may change neither another store's feed row on a channel's page nor the
    channel's own settings; but holding delete_channel, its delete page removed the channel
    with every store's feeds (B's included). A channel is for staff without a limit to
    delete, as to add."""
    mkt = ChannelFactory(code="mkt", name="Marketplace", kind="marketplace", currency="EUR")
    ChannelLocationFactory(channel=mkt, location=world["a"], priority=1)
    ChannelLocationFactory(channel=mkt, location=world["b"], priority=2)
    user = limited_with(
        world,
        "view_channel",
        "change_channel",
        "delete_channel",
        "view_channellocation",
        "change_channellocation",
        "delete_channellocation",
    )
    client.force_login(user)
    url = f"/admin/omnichannel/channel/{mkt.pk}/delete/"
    assert client.get(url).status_code == 403
    assert client.post(url, {"post": "yes"}).status_code == 403
    assert Channel.objects.filter(pk=mkt.pk).exists()
    assert ChannelLocation.objects.filter(channel=mkt, location=world["b"]).exists()

    head_office = staff("head-office")
    head_office.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_channel", "delete_channel", "delete_channellocation"]
        )
    )
    client.force_login(head_office)
    assert client.get(url).status_code == 200


def test_limited_staff_cannot_bulk_delete_a_channel_with_another_stores_feed(client, world):
    """The list's "Delete selected" action, the same refusal as the delete page's."""
    mkt = ChannelFactory(code="mkt", name="Marketplace", kind="marketplace", currency="EUR")
    ChannelLocationFactory(channel=mkt, location=world["b"], priority=2)
    user = limited_with(world, "view_channel", "change_channel", "delete_channel")
    client.force_login(user)
    client.post(
        "/admin/omnichannel/channel/",
        {"action": "delete_selected", "_selected_action": [mkt.pk], "post": "yes"},
    )
    assert Channel.objects.filter(pk=mkt.pk).exists()
    assert ChannelLocation.objects.filter(channel=mkt, location=world["b"]).exists()


def test_limited_staff_cannot_repoint_a_channels_webhook_nor_read_its_secret(client, world, web):
    """A channel's availability webhook pushes every store's stock to the subscriber, signed
    with the subscription's secret: store-A staff who may change subscriptions read the
    secret and sent the whole channel's pushes to a URL of theirs. Like the channel's own
    settings, they see it read-only (without the secret), add and delete none."""
    sub = WebhookSubscription.objects.create(channel=web, url="https://market.example/hook")
    codenames = [f"{action}_webhooksubscription" for action in ("view", "add", "change", "delete")]
    user = limited_with(world, *codenames)
    client.force_login(user)
    url = f"/admin/inventory/webhooksubscription/{sub.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and not page.context["has_change_permission"]
    assert sub.secret not in page.content.decode()
    repointed = {"channel": web.pk, "url": "https://mine.example/hook", "is_active": "on"}
    assert client.post(url, repointed).status_code == 403
    assert client.get("/admin/inventory/webhooksubscription/add/").status_code == 403
    deleting = f"/admin/inventory/webhooksubscription/{sub.pk}/delete/"
    assert client.post(deleting, {"post": "yes"}).status_code == 403
    sub.refresh_from_db()
    assert (sub.url, sub.is_active) == ("https://market.example/hook", True)

    head_office = staff("head-office")
    head_office.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(head_office)
    assert sub.secret in client.get(url).content.decode()


def test_limited_staff_cannot_register_nor_delete_a_channels_webhook_over_the_api(world, web):
    """The API's sibling of the admin's refusal: with the same model permissions, by session,
    store-A staff registered a URL of theirs (and got its secret) or deleted the channel's
    subscription. They still list them."""
    sub = WebhookSubscription.objects.create(channel=web, url="https://market.example/hook")
    codenames = [f"{action}_webhooksubscription" for action in ("view", "add", "change", "delete")]
    api = session(limited_with(world, *codenames))
    made = api.post(
        "/api/v1/webhooks/", {"channel": web.code, "url": "https://203.0.113.7/hook"}, format="json"
    )
    assert (made.status_code, made.json()["code"]) == (403, "location_forbidden")
    assert not WebhookSubscription.objects.filter(url__contains="203.0.113.7").exists()
    gone = api.delete(f"/api/v1/webhooks/{sub.pk}/")
    assert (gone.status_code, gone.json()["code"]) == (403, "location_forbidden")
    sub.refresh_from_db()
    assert sub.is_active
    assert [row["id"] for row in results(api, "/api/v1/webhooks/")] == [sub.pk]


HEAD_OFFICE_PAGES = (
    "/admin/auth/user/",
    "/admin/auth/group/",
    "/admin/axes/accessattempt/",
    "/admin/axes/accesslog/",
)
ACCOUNT_PERMS = (
    "view_user",
    "add_user",
    "change_user",
    "view_group",
    "change_group",
    "view_accessattempt",
    "view_accesslog",
)


def own_page_lifting_the_limit(user) -> dict:
    """What a staff member's page posts when they tick "superuser status" and delete their
    store limit."""
    return {
        "username": user.username,
        "is_staff": "on",
        "is_superuser": "on",
        "is_active": "on",
        **staff_page_rows(
            user,
            locations=user.store_limit.locations.all(),
            **{
                "store_limit-INITIAL_FORMS": "1",
                "store_limit-0-id": user.store_limit.pk,
                "store_limit-0-DELETE": "on",
            },
        ),
    }


def test_limited_staff_who_may_change_users_cannot_lift_their_own_limit(client, world):
    """Store-A staff holding auth.change_user opened their own page, deleted their store
    limit and ticked "superuser status". Staff accounts, groups and login records are for
    head office: limited staff get 403 there whatever their permissions, and their own
    account keeps its limit; the same permissions without a limit open the pages."""
    user = limited_with(world, *ACCOUNT_PERMS)
    client.force_login(user)
    for url in HEAD_OFFICE_PAGES:
        assert client.get(url).status_code == 403, url
    assert client.get(f"/admin/auth/user/{user.pk}/change/").status_code == 403
    lifted = client.post(f"/admin/auth/user/{user.pk}/change/", own_page_lifting_the_limit(user))
    assert lifted.status_code == 403
    again = type(user).objects.get(pk=user.pk)
    assert store_limit(user=again) == {world["a"].pk} and not again.is_superuser
    index = client.get("/admin/")
    assert index.status_code == 200
    assert {app["app_label"] for app in index.context["app_list"]}.isdisjoint({"auth", "axes"})

    head_office = staff("hq")
    head_office.user_permissions.add(*Permission.objects.filter(codename__in=ACCOUNT_PERMS))
    client.force_login(head_office)
    for url in HEAD_OFFICE_PAGES:
        assert client.get(url).status_code == 200, url
