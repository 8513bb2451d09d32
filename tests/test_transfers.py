"""Transfers: reserved at the origin, in transit once shipped, short or over on receipt."""

import pytest

from inventory.models import StockLevel, StockMovement, Transfer
from inventory.services import StockLine, stock_receive
from tests.conftest import as_client
from tests.factories import ChannelLocationFactory, LocationFactory, VariantFactory, make_api_client
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def stores(pos, store):
    """lyon (10 TEE-M) and paris, both POS stores, each with its own till."""
    paris = LocationFactory(code="paris")
    ChannelLocationFactory(channel=pos, location=paris, priority=2)
    tee = VariantFactory(sku="TEE-M")
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")
    _, lyon_till = make_api_client(pos, store, name="lyon till")
    _, paris_till = make_api_client(pos, paris, name="paris till")
    return tee, store, paris, as_client(lyon_till), as_client(paris_till)


def request_transfer(till, quantity, origin="lyon", destination="paris"):
    return till.post(
        "/api/v1/stock/transfers/",
        {
            "from_location": origin,
            "to_location": destination,
            "lines": [{"sku": "TEE-M", "quantity": quantity}],
        },
        format="json",
    )


def level(variant, location):
    row = StockLevel.objects.filter(variant=variant, location=location).first()
    return (row.on_hand, row.reserved) if row else (0, 0)


def test_short_receipt_origin_destination_and_in_transit_add_up(stores):
    tee, lyon, paris, lyon_till, paris_till = stores
    created = request_transfer(lyon_till, 6)
    assert created.status_code == 201, created.json()
    transfer_id = created.json()["id"]
    assert created.json()["status"] == "requested"
    assert level(tee, lyon) == (10, 6)  # reserved at the origin, nobody else can sell it

    shipped = lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/")
    assert shipped.status_code == 200
    [line] = shipped.json()["lines"]
    assert line["in_transit"] == 6
    assert level(tee, lyon) == (4, 0)
    assert level(tee, paris) == (0, 0)

    received = paris_till.post(
        f"/api/v1/stock/transfers/{transfer_id}/receive/",
        {"lines": [{"sku": "TEE-M", "quantity": 5}]},
        format="json",
    )
    assert received.status_code == 200
    [line] = received.json()["lines"]
    assert (line["received_quantity"], line["in_transit"], line["discrepancy"]) == (5, 0, -1)
    assert level(tee, paris) == (5, 0)
    # Everything that left lyon is at paris or recorded as missing on the transfer.
    assert level(tee, lyon)[0] + level(tee, paris)[0] - line["discrepancy"] == 10
    reasons = StockMovement.objects.filter(reference=f"transfer:{transfer_id}")
    assert sorted(reasons.values_list("reason", "delta")) == [
        ("reservation", 0),
        ("transfer_in", 5),
        ("transfer_out", -6),
    ]
    assert_ledger_matches_levels()


def test_receipt_without_lines_books_everything_shipped(stores):
    tee, _, paris, lyon_till, paris_till = stores
    transfer_id = request_transfer(lyon_till, 2).json()["id"]
    lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/")
    body = paris_till.post(f"/api/v1/stock/transfers/{transfer_id}/receive/").json()
    assert body["status"] == "received"
    assert body["lines"][0]["discrepancy"] == 0
    assert level(tee, paris) == (2, 0)


def test_cancel_before_shipping_releases_and_wrong_transitions_are_409(stores):
    tee, lyon, _, lyon_till, paris_till = stores
    transfer_id = request_transfer(lyon_till, 3).json()["id"]
    receive_early = paris_till.post(f"/api/v1/stock/transfers/{transfer_id}/receive/")
    assert receive_early.status_code == 409
    assert receive_early.json()["code"] == "invalid_transition"
    assert lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/cancel/").status_code == 200
    assert level(tee, lyon) == (10, 0)
    ship_cancelled = lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/")
    assert ship_cancelled.status_code == 409
    assert Transfer.objects.get(pk=transfer_id).status == "cancelled"
    assert_ledger_matches_levels()


def test_only_the_sending_store_ships_and_only_the_receiving_store_receives(stores):
    _, _, _, lyon_till, paris_till = stores
    transfer_id = request_transfer(lyon_till, 1).json()["id"]
    response = paris_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/")
    assert response.status_code == 403
    assert response.json()["code"] == "location_forbidden"
    lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/")
    assert lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/receive/").status_code == 403


@pytest.mark.parametrize(
    ("body", "status_code", "code"),
    [
        (
            {
                "from_location": "lyon",
                "to_location": "lyon",
                "lines": [{"sku": "TEE-M", "quantity": 1}],
            },
            400,
            "invalid",
        ),
        ({"from_location": "lyon", "to_location": "paris", "lines": []}, 400, "invalid"),
        (
            {
                "from_location": "lyon",
                "to_location": "paris",
                "lines": [{"sku": "TEE-M", "quantity": 0}],
            },
            400,
            "invalid",
        ),
        (
            {
                "from_location": "lyon",
                "to_location": "paris",
                "lines": [{"sku": "NOPE", "quantity": 1}],
            },
            400,
            "unknown_sku",
        ),
        (
            {
                "from_location": "lyon",
                "to_location": "paris",
                "lines": [{"sku": "TEE-M", "quantity": 11}],
            },
            409,
            "insufficient_stock",
        ),
        (
            {
                "from_location": "lyon",
                "to_location": "nowhere",
                "lines": [{"sku": "TEE-M", "quantity": 1}],
            },
            400,
            "unknown_location",
        ),
    ],
)
def test_bad_transfer_requests_write_nothing(stores, body, status_code, code):
    tee, lyon, _, lyon_till, _ = stores
    response = lyon_till.post("/api/v1/stock/transfers/", body, format="json")
    assert response.status_code == status_code, response.json()
    assert response.json()["code"] == code
    assert Transfer.objects.count() == 0
    assert level(tee, lyon) == (10, 0)


def test_a_pos_client_sends_transfers_only_from_its_own_store(stores, pos):
    """The origin's units are reserved by the request, and only the origin ships or cancels:
    the lyon till can neither move stock between two other stores nor pull paris's stock to
    itself (it would reserve paris's shelf, which lyon could not release)."""
    tee, _lyon, paris, lyon_till, paris_till = stores
    stock_receive(lines=[StockLine(tee.pk, paris.pk, 5)], reference="delivery")
    third = LocationFactory(code="nice")
    ChannelLocationFactory(channel=pos, location=third, priority=3)
    for origin, destination in (("paris", "nice"), ("paris", "lyon")):
        response = request_transfer(lyon_till, 1, origin=origin, destination=destination)
        assert response.status_code == 403, (origin, destination)
        assert response.json()["code"] == "location_forbidden"
    assert level(tee, paris) == (5, 0)
    assert not Transfer.objects.exists()
    # Paris sends to lyon itself.
    assert request_transfer(paris_till, 1, origin="paris", destination="lyon").status_code == 201
    assert level(tee, paris) == (5, 1)
    assert_ledger_matches_levels()


def test_the_transfer_list_a_till_sees_runs_a_constant_number_of_queries(
    stores, django_assert_max_num_queries
):
    """Each transfer lists its lines and their SKUs: read with the page, not per transfer,
    for the sending till and the receiving one (only staff's list was counted)."""
    from inventory.transfers import TransferItem, transfer_request

    _, lyon, paris, lyon_till, paris_till = stores

    def requested(count):
        for _ in range(count):
            shirt, socks = VariantFactory(), VariantFactory()
            stock_receive(
                lines=[StockLine(shirt.pk, lyon.pk, 5), StockLine(socks.pk, lyon.pk, 5)],
                reference="delivery",
            )
            transfer_request(
                from_location_id=lyon.pk,
                to_location_id=paris.pk,
                items=[TransferItem(shirt.pk, 1), TransferItem(socks.pk, 2)],
            )

    requested(1)
    baselines = []
    for till in (lyon_till, paris_till):
        till.get("/api/v1/stock/transfers/")
        with django_assert_max_num_queries(20) as few:
            till.get("/api/v1/stock/transfers/")
        baselines.append(len(few.captured_queries))
    requested(15)
    for till, baseline in zip((lyon_till, paris_till), baselines, strict=True):
        with django_assert_max_num_queries(baseline):
            listed = till.get("/api/v1/stock/transfers/").json()["results"]
        assert len(listed) == 16 and all(len(t["lines"]) == 2 for t in listed)


def test_a_till_sends_stock_back_to_a_warehouse_that_feeds_only_the_web_shop(stores, web):
    """CONTRACT: a POS client may transfer stock at its own location. The destination only
    has to exist (it was checked as a location the till may read, those feeding its channel,
    so a warehouse feeding the web shop only was 403). Who receives there: staff with the
    transfer permissions (only a till stands in a location, and no till stands in a
    warehouse), not the sending till nor the storefront; and the storefront still cannot
    send from a store."""
    from rest_framework.test import APIClient

    from tests.factories import make_staff

    tee, lyon, _, lyon_till, _ = stores
    wh = LocationFactory(code="wh", kind="warehouse", pickup=False, ships=True)
    ChannelLocationFactory(channel=web, location=wh, priority=1)
    storefront = as_client(make_api_client(web, name="storefront")[1])
    at_wh = APIClient()
    at_wh.force_login(
        make_staff("stock clerk", "inventory.view_transfer", "inventory.change_transfer")
    )

    refused = request_transfer(storefront, 1, origin="lyon", destination="wh")
    assert (refused.status_code, refused.json()["code"]) == (403, "location_forbidden")
    created = request_transfer(lyon_till, 2, destination="wh")
    assert created.status_code == 201, created.json()
    assert (created.json()["from_location"], created.json()["to_location"]) == ("lyon", "wh")
    assert level(tee, lyon) == (10, 2)
    transfer_id = created.json()["id"]
    assert lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/").status_code == 200
    for outsider in (lyon_till, storefront):
        response = outsider.post(f"/api/v1/stock/transfers/{transfer_id}/receive/")
        assert (response.status_code, response.json()["code"]) == (403, "location_forbidden")
    received = at_wh.post(f"/api/v1/stock/transfers/{transfer_id}/receive/")
    assert received.status_code == 200, received.json()
    assert received.json()["status"] == "received"
    assert (level(tee, lyon), level(tee, wh)) == ((8, 0), (2, 0))
    assert_ledger_matches_levels()


@pytest.mark.parametrize("shipped", [False, True])
def test_the_admin_cannot_delete_a_transfer_and_strand_its_stock(client, store, shipped):
    """Deleting a requested transfer would leave its units reserved at the origin with nothing
    to release them; a shipped one, in transit with nothing to receive. Even a superuser
    cancels instead."""
    from inventory.transfers import TransferItem, transfer_request, transfer_ship
    from tests.factories import make_staff

    tee = VariantFactory(sku="TEE")
    paris = LocationFactory(code="paris")
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")
    transfer = transfer_request(
        from_location_id=store.pk, to_location_id=paris.pk, items=[TransferItem(tee.pk, 4)]
    )
    if shipped:
        transfer_ship(transfer_id=transfer.pk)
    client.force_login(make_staff("boss", superuser=True))
    page = client.get(f"/admin/inventory/transfer/{transfer.pk}/delete/")
    posted = client.post(f"/admin/inventory/transfer/{transfer.pk}/delete/", {"post": "yes"})
    bulk = client.post(
        "/admin/inventory/transfer/",
        {"action": "delete_selected", "_selected_action": [transfer.pk], "post": "yes"},
    )
    assert (page.status_code, posted.status_code) == (403, 403)
    assert bulk.status_code in (200, 302)  # no such action offered: the list answers again
    assert Transfer.objects.filter(pk=transfer.pk).exists()
    assert_ledger_matches_levels()


def test_a_sku_received_on_two_lines_counts_both(stores):
    """Two boxes of one SKU counted apart (3 + 2): both arrived, as two lines of a request
    add up; the last line does not replace the first."""
    tee, _, paris, lyon_till, paris_till = stores
    transfer_id = request_transfer(lyon_till, 5).json()["id"]
    assert lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/").status_code == 200
    response = paris_till.post(
        f"/api/v1/stock/transfers/{transfer_id}/receive/",
        {"lines": [{"sku": "TEE-M", "quantity": 3}, {"sku": "TEE-M", "quantity": 2}]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["lines"][0]["received_quantity"] == 5
    assert response.json()["lines"][0]["discrepancy"] == 0
    assert level(tee, paris) == (5, 0)
    assert_ledger_matches_levels()


def test_a_transfer_to_its_own_origin_is_invalid_with_the_field_named(stores):
    _, _, _, lyon_till, _ = stores
    response = request_transfer(lyon_till, 1, destination="lyon")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert body["errors"] == {"to_location": [body["detail"]]}
    assert Transfer.objects.count() == 0


@pytest.mark.parametrize(
    "loss",
    [
        {"delta": -10, "reason": "damage"},  # every unit damaged, 6 of them promised
        {"counted": 2, "reason": "count"},  # the shelf holds 2 of the 6 promised
    ],
    ids=["damage", "count"],
)
def test_reserved_units_that_are_gone_cannot_be_shipped(stores, loss):
    """A damage or a count may take on_hand below what is reserved: the goods are gone,
    whatever was promised. Shipping them is then refused (409 insufficient_stock with what
    is on hand), so on_hand never goes negative without an oversold sale; cancelling the
    transfer releases the reservation."""
    tee, lyon, paris, lyon_till, _ = stores
    transfer_id = request_transfer(lyon_till, 6).json()["id"]
    adjusted = lyon_till.post(
        "/api/v1/stock/adjustments/", {"sku": "TEE-M", "location": "lyon", **loss}, format="json"
    )
    assert adjusted.status_code == 201, adjusted.json()
    on_hand = level(tee, lyon)[0]
    assert level(tee, lyon) == (on_hand, 6)
    shipped = lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/ship/")
    assert shipped.status_code == 409, shipped.json()
    body = shipped.json()
    assert body["code"] == "insufficient_stock"
    assert (body["sku"], body["location"], body["available"], body["on_hand"]) == (
        "TEE-M",
        "lyon",
        0,
        on_hand,
    )
    assert Transfer.objects.get(pk=transfer_id).status == Transfer.Status.REQUESTED
    assert level(tee, lyon) == (on_hand, 6)
    assert lyon_till.post(f"/api/v1/stock/transfers/{transfer_id}/cancel/").status_code == 200
    assert level(tee, lyon) == (on_hand, 0)
    assert level(tee, paris) == (0, 0)
    assert_ledger_matches_levels()
