"""Hostile input on every write: a clear 4xx JSON error with a `code`, and nothing written (an
offline sale in a till's batch: that sale rejected alone, with the code, in the 200 answer).

Oversized bodies, JSON nested thousands of levels deep, quantities that are negative, zero,
huge or not integers, SKUs in emoji, right-to-left script, with a NUL or an unpaired surrogate,
and SQL-looking text in filters and bodies. After each, the orders, returns, transfers, members,
the stock ledger and every stock level are exactly as before.
"""

import json
from decimal import Decimal

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from customers.models import Member
from inventory.models import StockLevel, StockMovement, Transfer
from inventory.services import StockLine, stock_receive
from omnichannel.api.parsers import MAX_DEPTH
from orders import services as order_services
from orders.models import Order, Return
from tests.conftest import as_client
from tests.factories import (
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    VariantFactory,
    make_api_client,
    make_staff,
)
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db

SQL = "'; DROP TABLE orders_order; --"
HUGE_QUANTITIES = [10**20, 2**63, 2**63 - 1, 2**31, -(2**63)]
# (A numeric string, "1", is read as 1: DRF's IntegerField is lenient there, and harmlessly.)
NOT_A_QUANTITY = [-1, 0, *HUGE_QUANTITIES, 1.5, "1.5", "many", True, None, [], {}]
SKUS_THAT_ARE_NOT = {
    "emoji": "👕",
    "emoji_zwj_sequence": "👩🏽‍💻",
    "rtl_hebrew": "חולצה",
    "rtl_arabic_with_override": "\u202equmit-EET",
    "zero_width_space": "TEE\u200b",
    "combining_marks": "T\u0301E\u0301E\u0301",
    "fullwidth": "\uff34\uff25\uff25",
    "sql": SQL,
    "like_wildcards": "T%E_",
    "very_long": "T" * 10_000,
}


@pytest.fixture
def shop(web, pos, store):
    """lyon (the till's store, 10 TEE) and paris; an in-store sale of 2 TEE to return; a
    transfer of 1 TEE shipped from lyon, for paris's till to receive."""
    paris = LocationFactory(code="paris")
    ChannelLocationFactory(channel=pos, location=paris, priority=2)
    tee = VariantFactory(sku="TEE")
    for channel in (web, pos):
        ChannelPriceFactory(variant=tee, channel=channel, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")
    order = order_services.order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        lines=[order_services.LineRequest(sku="TEE", quantity=2)],
    )
    _, token = make_api_client(pos, store, name="till")
    till = as_client(token)
    created = till.post(
        "/api/v1/stock/transfers/",
        {"from_location": "lyon", "to_location": "paris", "lines": [{"sku": "TEE", "quantity": 1}]},
        format="json",
    )
    assert created.status_code == 201, created.json()
    transfer = created.json()["id"]
    assert till.post(f"/api/v1/stock/transfers/{transfer}/ship/").status_code == 200
    _, paris_token = make_api_client(pos, paris, name="paris till")
    return {
        "till": till,
        "paris_till": as_client(paris_token),
        "order": order,
        "transfer": transfer,
    }


# --- what each write looks like when well-formed; a test breaks one field of it -------------


def order_body(sku="TEE", quantity=1):
    return {"fulfillment": "in_store", "lines": [{"sku": sku, "quantity": quantity}]}


def adjustment_body(sku="TEE", delta=1):
    return {"sku": sku, "location": "lyon", "delta": delta, "reason": "receipt"}


def count_body(sku="TEE", counted=5):
    return {"sku": sku, "location": "lyon", "counted": counted, "reason": "count"}


def transfer_body(sku="TEE", quantity=1):
    return {
        "from_location": "lyon",
        "to_location": "paris",
        "lines": [{"sku": sku, "quantity": quantity}],
    }


def return_body(shop, sku="TEE", quantity=1):
    return {
        "order": shop["order"].number,
        "location": "lyon",
        "lines": [{"sku": sku, "quantity": quantity}],
        "restock": True,
    }


def sync_body(sku="TEE", quantity=1):
    return {"sales": [{"client_id": "offline-1", "lines": [{"sku": sku, "quantity": quantity}]}]}


def receive_body(sku="TEE", quantity=1):
    return {"lines": [{"sku": sku, "quantity": quantity}]}


WRITES = {
    "orders": ("/api/v1/orders/", lambda shop, **kw: order_body(**kw)),
    "adjustments": ("/api/v1/stock/adjustments/", lambda shop, **kw: adjustment_body(**kw)),
    "transfers": ("/api/v1/stock/transfers/", lambda shop, **kw: transfer_body(**kw)),
    "returns": ("/api/v1/returns/", return_body),
    "pos_sync": ("/api/v1/pos/sync/", lambda shop, **kw: sync_body(**kw)),
}


def post_write(shop, name, **fields):
    """POST the write as the lyon till. The JSON is ASCII with escapes, as most clients send
    it: an unpaired surrogate goes over the wire as `\\ud800`."""
    path, body = WRITES[name]
    return post_json(shop["till"], path, body(shop, **fields))


def post_json(client, path, body, **headers):
    return client.generic(
        "POST", path, json.dumps(body), content_type="application/json", **headers
    )


# --- what "nothing written" means -------------------------------------------------------------


def snapshot() -> dict:
    return {
        "orders": Order.objects.count(),
        "returns": Return.objects.count(),
        "transfers": sorted(Transfer.objects.values_list("pk", "status")),
        "members": Member.objects.count(),
        "movements": StockMovement.objects.count(),
        "levels": sorted(
            StockLevel.objects.values_list("variant_id", "location_id", "on_hand", "reserved")
        ),
    }


@pytest.fixture
def unchanged(shop):
    """Asserts, after the test, that no row was written anywhere that matters."""
    before = snapshot()
    yield
    assert snapshot() == before
    assert_ledger_matches_levels()


def assert_refused_invalid(response, name: str) -> None:
    """400 `invalid` naming the field; an offline sale the checks refuse is rejected
    `invalid` alone, naming it (a bad sale never blocks the rest of a till's outbox)."""
    if name != "pos_sync":
        body = assert_error(response, 400, "invalid")
        assert body["errors"], body
        return
    assert response.status_code == 200, response.content[:500]
    [result] = response.json()["results"]
    assert (result["status"], result["code"], result["order"]) == ("rejected", "invalid", None)
    assert result["detail"].startswith("The sale has invalid fields."), result


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["detail"], str) and body["detail"], body
    if code is not None:
        assert body["code"] == code, body
    return body


# --- oversized bodies -----------------------------------------------------------------------


def test_the_body_size_limit_is_set_explicitly():
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 2_621_440


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_body_over_the_limit_is_413_on_every_write(shop, unchanged, name):
    path, body = WRITES[name]
    padded = {**body(shop), "note": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    response = post_json(shop["till"], path, padded)
    body = assert_error(response, 413, "request_too_large")
    assert body["limit"] == settings.DATA_UPLOAD_MAX_MEMORY_SIZE


@pytest.mark.parametrize("path", ["/api/v1/stock/adjustments/", "/api/v1/orders/{order}/cancel/"])
def test_a_staff_sessions_oversized_write_is_413_even_where_no_body_is_read(shop, unchanged, path):
    """Under session auth the CSRF check reads the body of every POST, even a transition's."""
    staff = APIClient(enforce_csrf_checks=True)
    staff.force_login(make_staff("big", superuser=True))
    staff.cookies["csrftoken"] = "c" * 32
    padded = {**adjustment_body(), "note": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)}
    url = path.format(order=shop["order"].pk)
    response = post_json(staff, url, padded, HTTP_X_CSRFTOKEN="c" * 32)
    assert_error(response, 413, "request_too_large")


def test_a_body_just_under_the_limit_is_read_and_judged_on_its_fields(shop, unchanged, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_000
    body = {**order_body(), "note": "x" * 1_900}  # `note` is no order field: ignored
    body["lines"][0]["quantity"] = 0
    response = shop["till"].post("/api/v1/orders/", body, format="json")
    assert_error(response, 400, "invalid")


def test_a_body_over_the_limit_with_an_idempotency_key_is_413_and_keeps_no_answer(
    shop, unchanged, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    padded = {**order_body(), "note": "x" * 2_000}
    first = shop["till"].post(
        "/api/v1/orders/", padded, format="json", HTTP_IDEMPOTENCY_KEY="big-1"
    )
    assert_error(first, 413, "request_too_large")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
    # Nothing was recorded for the key: a body that fits is then a fresh request.
    retry = shop["till"].post(
        "/api/v1/orders/", order_body(quantity=0), format="json", HTTP_IDEMPOTENCY_KEY="big-1"
    )
    assert_error(retry, 400, "invalid")


def test_a_body_that_is_not_json_is_415(shop, unchanged):
    response = shop["till"].post(
        "/api/v1/orders/", "fulfillment=in_store", content_type="application/x-www-form-urlencoded"
    )
    assert_error(response, 415, "unsupported_media_type")


# --- deeply nested and malformed JSON --------------------------------------------------------


def nested_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def nested_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("name", sorted(WRITES))
@pytest.mark.parametrize(
    "body",
    [nested_list(10_000), nested_object(10_000), nested_list(100_000)],
    ids=["list_10000_deep", "object_10000_deep", "list_100000_deep"],
)
def test_json_nested_thousands_deep_is_a_400_not_a_recursion_error(shop, unchanged, name, body):
    path, _ = WRITES[name]
    response = shop["till"].generic("POST", path, body, content_type="application/json")
    assert_error(response, 400, "parse_error")


def test_a_deep_value_inside_a_real_order_is_a_400(shop, unchanged):
    body = json.dumps(order_body())[:-1] + ', "member": ' + nested_object(10_000) + "}"
    response = shop["till"].generic(
        "POST", "/api/v1/orders/", body, content_type="application/json"
    )
    assert_error(response, 400, "parse_error")


def test_nesting_just_past_the_limit_is_refused_and_at_the_limit_is_parsed(shop, unchanged):
    too_deep = shop["till"].generic(
        "POST", "/api/v1/orders/", nested_list(MAX_DEPTH + 1), content_type="application/json"
    )
    assert_error(too_deep, 400, "parse_error")
    at_limit = shop["till"].generic(
        "POST", "/api/v1/orders/", nested_list(MAX_DEPTH), content_type="application/json"
    )
    assert_error(at_limit, 400, "invalid")  # parsed: a list is not an order


def test_deep_json_with_an_idempotency_key_is_a_400(shop, unchanged):
    response = shop["till"].generic(
        "POST",
        "/api/v1/orders/",
        nested_list(10_000),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="deep-1",
    )
    assert_error(response, 400, "parse_error")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"NaN",
        b'{"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": NaN}]}',
        b'{"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": Infinity}]}',
        b'{"fulfillment": "in_store", "lines": [{"sku": "TEE", "quantity": 1e400}]}',
        b"\xff\xfe\x00",
        b'"just a string"',
        b"null",
        b"12",
    ],
    ids=[
        "empty",
        "truncated",
        "bare_nan",
        "nan_quantity",
        "infinite_quantity",
        "overflowing_float",
        "not_utf8",
        "a_string",
        "null",
        "a_number",
    ],
)
def test_malformed_json_bodies_are_a_400_on_orders(shop, unchanged, raw):
    response = shop["till"].generic("POST", "/api/v1/orders/", raw, content_type="application/json")
    assert_error(response, 400)


# --- quantities ------------------------------------------------------------------------------


@pytest.mark.parametrize("quantity", NOT_A_QUANTITY, ids=repr)
@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_quantity_that_is_not_a_positive_bounded_integer_is_a_400(
    shop, unchanged, name, quantity
):
    if name == "adjustments":
        response = post_write(shop, name, delta=quantity)
    else:
        response = post_write(shop, name, quantity=quantity)
    if name == "adjustments" and quantity == -1:  # a whole number, but a receipt adds stock
        assert_error(response, 400, "invalid_quantity")
        return
    assert_refused_invalid(response, name)


@pytest.mark.parametrize(
    ("reason", "delta"), [("receipt", -1), ("damage", 1), ("theft", 3), ("receipt", -(10**6))]
)
def test_an_adjustment_whose_sign_contradicts_its_reason_is_a_400(shop, unchanged, reason, delta):
    response = post_json(
        shop["till"],
        "/api/v1/stock/adjustments/",
        {**adjustment_body(delta=delta), "reason": reason},
    )
    assert_error(response, 400, "invalid_quantity")


@pytest.mark.parametrize(("reason", "delta"), [("correction", -1), ("correction", 1)])
def test_a_correction_goes_either_way(shop, reason, delta):
    response = post_json(
        shop["till"],
        "/api/v1/stock/adjustments/",
        {**adjustment_body(delta=delta), "reason": reason},
    )
    assert response.status_code == 201, response.json()


@pytest.mark.parametrize("counted", [-1, *HUGE_QUANTITIES, 1.5, None], ids=repr)
def test_a_cycle_count_that_is_negative_or_huge_is_a_400(shop, unchanged, counted):
    response = shop["till"].post(
        "/api/v1/stock/adjustments/", count_body(counted=counted), format="json"
    )
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize("quantity", [-1, *HUGE_QUANTITIES, 1.5, "many", None], ids=repr)
def test_a_received_quantity_that_is_negative_or_huge_is_a_400(shop, unchanged, quantity):
    response = post_json(
        shop["paris_till"],
        f"/api/v1/stock/transfers/{shop['transfer']}/receive/",
        receive_body(quantity=quantity),
    )
    assert_error(response, 400, "invalid")


def test_a_negative_delta_below_what_is_on_hand_is_a_409(shop, unchanged):
    response = post_json(
        shop["till"],
        "/api/v1/stock/adjustments/",
        {**adjustment_body(delta=-11), "reason": "damage"},
    )
    assert_error(response, 409, "negative_stock")


def test_returning_more_than_was_sold_is_a_409(shop, unchanged):
    response = post_write(shop, "returns", quantity=3)
    assert_error(response, 409)


def test_redeeming_a_huge_number_of_points_is_a_400(shop, unchanged):
    body = {**order_body(), "member": {"email": "huge@example.com"}, "redeem_points": 2**63}
    response = shop["till"].post("/api/v1/orders/", body, format="json")
    assert_error(response, 400, "invalid")


@pytest.mark.parametrize("amount", ["-1.00", "0", "1e400", "NaN", "Infinity", "1" * 40], ids=repr)
def test_a_payment_amount_that_is_not_money_is_a_400(shop, unchanged, amount):
    body = {**order_body(), "payments": [{"method": "card", "amount": amount}]}
    response = shop["till"].post("/api/v1/orders/", body, format="json")
    assert_error(response, 400, "invalid")


# --- SKUs in any script, with NULs and broken surrogates --------------------------------------


@pytest.mark.parametrize("sku", SKUS_THAT_ARE_NOT.values(), ids=SKUS_THAT_ARE_NOT.keys())
@pytest.mark.parametrize("name", ["orders", "adjustments", "transfers", "returns"])
def test_an_unknown_sku_in_any_script_is_a_clear_400(shop, unchanged, name, sku):
    response = post_write(shop, name, sku=sku)
    body = assert_error(response, 400)
    assert body["code"] in ("unknown_sku", "invalid"), body  # invalid: longer than a SKU


@pytest.mark.parametrize("sku", SKUS_THAT_ARE_NOT.values(), ids=SKUS_THAT_ARE_NOT.keys())
def test_an_offline_sale_of_an_unknown_sku_is_rejected_alone(shop, unchanged, sku):
    response = post_write(shop, "pos_sync", sku=sku)
    if len(sku) > 64:  # too long for the field: the sale is invalid
        assert_refused_invalid(response, "pos_sync")
        return
    assert response.status_code == 200, response.json()
    [result] = response.json()["results"]
    assert (result["status"], result["code"]) == ("rejected", "unknown_sku")


@pytest.mark.parametrize(
    "sku",
    ["TEE\x00", "\x00", "TEE\ud800", "\udfff", "\ud83d"],
    ids=["nul_after", "nul_alone", "lone_high_surrogate", "lone_low_surrogate", "half_an_emoji"],
)
@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_sku_with_a_nul_or_a_lone_surrogate_is_a_400_on_every_write(shop, unchanged, name, sku):
    """On every write but an offline sale's, which is rejected alone."""
    response = post_write(shop, name, sku=sku)
    assert_refused_invalid(response, name)


@pytest.mark.parametrize("sku", ["TEE\x00", "TEE\ud800"], ids=["nul", "lone_surrogate"])
def test_a_received_sku_with_a_nul_or_a_lone_surrogate_is_a_400(shop, unchanged, sku):
    response = post_json(
        shop["paris_till"],
        f"/api/v1/stock/transfers/{shop['transfer']}/receive/",
        receive_body(sku=sku),
    )
    assert_error(response, 400)


@pytest.mark.parametrize("text", ["A\x00B", "\ud800"], ids=["nul", "lone_surrogate"])
def test_a_nul_or_a_lone_surrogate_in_any_text_field_is_a_400_naming_it(shop, unchanged, text):
    cases = [
        ("/api/v1/orders/", {**order_body(), "member": {"email": f"{text}@example.com"}}),
        ("/api/v1/members/", {"email": "a@example.com", "first_name": text}),
        ("/api/v1/stock/adjustments/", {**adjustment_body(), "note": text}),
        ("/api/v1/stock/transfers/", {**transfer_body(), "note": text}),
        (
            "/api/v1/pos/sync/",
            {"sales": [{"client_id": text, "lines": [{"sku": "TEE", "quantity": 1}]}]},
        ),
        ("/api/v1/orders/", {**order_body(), "payments": [{"method": text, "amount": "10.00"}]}),
    ]
    for path, body in cases:
        response = post_json(shop["till"], path, body)
        assert_error(response, 400, "invalid")
        assert response.json()["errors"], response.json()


@pytest.mark.parametrize("sku", SKUS_THAT_ARE_NOT.values(), ids=SKUS_THAT_ARE_NOT.keys())
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/stock/?sku=",
        "/api/v1/variants/?sku=",
        "/api/v1/products/?sku=",
        "/api/v1/stock/movements/?sku=",
        "/api/v1/availability/?sku=",
    ],
)
def test_an_unknown_sku_in_a_filter_matches_nothing(shop, unchanged, path, sku):
    from urllib.parse import quote

    response = shop["till"].get(path + quote(sku))
    if response.status_code == 400:  # availability names unknown SKUs; a filter, long ones
        long = len(sku) > 64
        assert_error(
            response, 400, "unknown_sku" if "availability" in path and not long else "invalid"
        )
        return
    assert response.status_code == 200, response.json()
    results = response.json()["results"]
    assert (
        all(row.get("available", 0) == 0 for row in results)
        if "availability" in path
        else (results == [])
    )


@pytest.mark.parametrize(
    "raw", ["TEE%00", "%00", "%00TEE"], ids=["nul_after", "nul_alone", "nul_before"]
)
def test_a_nul_in_a_filter_or_a_path_is_a_400(shop, unchanged, raw):
    assert_error(shop["till"].get(f"/api/v1/stock/?sku={raw}"), 400, "invalid")
    assert_error(shop["till"].get(f"/api/v1/variants/{raw}/"), 400, "invalid")


def test_an_overlong_utf8_nul_is_not_a_nul_and_matches_nothing(shop, unchanged):
    """`%C0%80` is invalid UTF-8, decoded as replacement characters, never as a NUL."""
    response = shop["till"].get("/api/v1/stock/?sku=TEE%C0%80")
    assert response.status_code == 200 and response.json()["results"] == []
    assert_error(shop["till"].get("/api/v1/variants/TEE%C0%80/"), 404, "not_found")


@pytest.mark.parametrize("sku", ["👕", "חולצה", "T" * 1000], ids=["emoji", "rtl", "long"])
def test_an_unknown_sku_in_a_path_is_a_json_404(shop, sku):
    from urllib.parse import quote

    assert_error(shop["till"].get(f"/api/v1/variants/{quote(sku)}/"), 404, "not_found")


# --- SQL-looking text ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"/api/v1/orders/?number={SQL}",
        f"/api/v1/orders/?channel={SQL}",
        f"/api/v1/orders/?location={SQL}",
        f"/api/v1/stock/?location={SQL}",
        f"/api/v1/stock/movements/?reference={SQL}",
        f"/api/v1/products/?search={SQL}",
        f"/api/v1/variants/?barcode={SQL}",
        "/api/v1/variants/?sku=TEE' OR '1'='1",
        "/api/v1/products/?search=%25",
        "/api/v1/products/?search=_",
    ],
)
def test_sql_looking_text_in_a_filter_is_only_text(shop, unchanged, query):
    """A filter compares text with text: SQL in it matches nothing and runs nothing."""
    response = shop["till"].get(query)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["results"] == []


@pytest.mark.parametrize(
    "query",
    [
        f"/api/v1/orders/?status={SQL}",
        f"/api/v1/orders/?created_after={SQL}",
        f"/api/v1/stock/movements/?reason={SQL}",
        f"/api/v1/members/?email={SQL}",
        f"/api/v1/products/?updated_since={SQL}",
        f"/api/v1/orders/?cursor={SQL}",  # orders page by cursor (newest first)
        f"/api/v1/products/?page={SQL}",
        "/api/v1/orders/?created_after=0001-01-01T00:00:00%2B10:00",
        "/api/v1/orders/?created_after=9999-12-31T23:59:59-10:00",
    ],
)
def test_sql_looking_or_out_of_range_text_in_a_typed_filter_is_a_4xx(shop, unchanged, query):
    response = shop["till"].get(query)
    if "page=" in query or "cursor=" in query:
        assert_error(response, 404, "not_found")
    else:
        assert_error(response, 400, "invalid")


@pytest.mark.parametrize("offset", ["-21:43", "%2B15:59", "%2B23:59"])
def test_a_time_offset_postgresql_refuses_is_read_in_utc_not_a_500(shop, offset):
    """Python reads offsets up to ±23:59, PostgreSQL only to ±15:59: found by schemathesis."""
    response = shop["till"].get(f"/api/v1/orders/?created_after=2020-01-01T00:00:00{offset}")
    assert response.status_code == 200, response.content[:300]
    assert [o["number"] for o in response.json()["results"]] == [shop["order"].number]


@pytest.mark.parametrize(
    ("name", "field"),
    [
        ("orders", "sku"),
        ("adjustments", "sku"),
        ("transfers", "sku"),
        ("returns", "sku"),
    ],
)
def test_sql_looking_text_in_a_body_is_a_4xx_with_a_code(shop, unchanged, name, field):
    response = post_write(shop, name, **{field: SQL})
    assert_error(response, 400, "unknown_sku")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/orders/", {**order_body(), "channel": SQL}),
        ("/api/v1/orders/", {**order_body(), "location": SQL}),
        ("/api/v1/orders/", {**order_body(), "fulfillment": SQL}),
        ("/api/v1/orders/", {**order_body(), "member": {"email": SQL}}),
        ("/api/v1/orders/", {**order_body(), "member": {"phone": SQL}}),
        ("/api/v1/stock/adjustments/", {**adjustment_body(), "location": SQL}),
        ("/api/v1/stock/adjustments/", {**adjustment_body(), "reason": SQL}),
        ("/api/v1/stock/transfers/", {**transfer_body(), "to_location": SQL}),
        (
            "/api/v1/returns/",
            {
                "order": SQL,
                "location": "lyon",
                "lines": [{"sku": "TEE", "quantity": 1}],
                "restock": True,
            },
        ),
        ("/api/v1/members/", {"email": SQL}),
        ("/api/v1/members/", {"phone": SQL}),
    ],
)
def test_sql_looking_text_in_any_body_field_is_a_4xx_with_a_code(shop, unchanged, path, body):
    response = post_json(shop["till"], path, body)
    assert 400 <= response.status_code < 500
    assert_error(response, response.status_code)


def test_the_tables_sql_text_named_are_still_there(shop):
    for query in (f"/api/v1/orders/?number={SQL}", f"/api/v1/products/?search={SQL}"):
        shop["till"].get(query)
    assert Order.objects.count() == 1
    assert shop["till"].get(f"/api/v1/orders/{shop['order'].number}/").status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "to=0001-01-05",
        "to=0001-01-01",
        "from=0001-01-01&to=0001-01-31&by=day",
        "from=9999-12-01&to=9999-12-31&by=day",
    ],
)
def test_sales_at_the_edges_of_the_calendar_are_answered_not_a_500(query):
    """`to=0001-01-05` without `from` reached back 30 days, before year 1: an OverflowError."""
    manager = APIClient()
    manager.force_login(make_staff("manager", superuser=True))
    response = manager.get(f"/api/v1/analytics/sales/?{query}")
    assert response.status_code == 200, response.content[:300]
    assert response.json()["results"] == []


@pytest.mark.parametrize("query", ["to=10000-01-01", "from=0000-12-31", f"by={SQL}", "from=x"])
def test_sales_with_dates_that_are_not_dates_is_a_400(query):
    manager = APIClient()
    manager.force_login(make_staff("manager", superuser=True))
    assert_error(manager.get(f"/api/v1/analytics/sales/?{query}"), 400, "invalid")


@pytest.mark.parametrize(
    "sold_at",
    ["0001-01-01T00:00:00+10:00", "9999-12-31T23:59:59-10:00", "2026-02-30T10:00:00Z", SQL, 0],
)
def test_an_offline_sale_time_off_the_calendar_is_rejected_invalid(shop, unchanged, sold_at):
    body = sync_body()
    body["sales"][0]["sold_at"] = sold_at
    assert_refused_invalid(post_json(shop["till"], "/api/v1/pos/sync/", body), "pos_sync")


@pytest.mark.parametrize("member", [2**63, 10**30, -1, 0])
def test_an_order_for_a_member_id_out_of_any_range_is_a_400(shop, unchanged, member):
    response = post_json(shop["till"], "/api/v1/orders/", {**order_body(), "member": member})
    assert_error(response, 400, "unknown_member")


# --- order keys that look like ids but are not ----------------------------------------------

NOT_AN_ORDER_ID = {
    "superscript_two": "\u00b2",  # str.isdigit() is True, int() refuses it
    "arabic_indic_digits": "\u0661\u0662",  # int() reads these, the id column never holds them
    "past_bigint": str(2**63),
    "twenty_digits": "9" * 20,
}


@pytest.mark.parametrize("key", NOT_AN_ORDER_ID.values(), ids=NOT_AN_ORDER_ID.keys())
def test_an_order_key_that_is_no_id_is_a_404_on_read_transition_and_return(shop, unchanged, key):
    assert_error(shop["till"].get(f"/api/v1/orders/{key}/"), 404, "not_found")
    assert_error(shop["till"].post(f"/api/v1/orders/{key}/cancel/"), 404, "not_found")
    body = {**return_body(shop), "order": key}
    assert_error(post_json(shop["till"], "/api/v1/returns/", body), 404, "not_found")
