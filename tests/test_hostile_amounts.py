"""Figures past what the books can hold: each a clear 4xx with a code (or, in an offline
batch, that sale alone rejected), and nothing written. Quantities are bounded by the
serializers; amounts, points and stock levels also by their columns."""

import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from customers.models import Member, PointsEntry
from inventory.models import StockLevel, StockMovement
from inventory.services import StockLine, stock_receive
from orders.models import Order
from tests.concurrency import require_postgres
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client, make_staff

pytestmark = pytest.mark.django_db

# 133 characters as sent; lower-casing turns each U+0130 into "i" + U+0307: 257, past the
# column's 254 (and still under the 320 validate_email allows).
GROWING_EMAIL = "a@" + ".".join(["\u0130" * 31] * 4) + ".com"


def post_json(client, path, body):
    return client.generic("POST", path, json.dumps(body), content_type="application/json")


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code, response.json()
    return response.json()


@pytest.fixture
def till(pos, store):
    _, token = make_api_client(pos, store, name="till")
    client = as_client(token)
    client.raise_request_exception = False  # as a caller sees it
    return client


def priced(pos, store, sku, amount, stock=0):
    variant = VariantFactory(sku=sku)
    ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal(amount))
    if stock:
        stock_receive(lines=[StockLine(variant.pk, store.pk, stock)], reference="delivery")
    return variant


@pytest.mark.parametrize("where", ["members", "orders"])
def test_an_email_longer_than_the_column_once_lower_cased_is_a_400(till, pos, store, where):
    assert len(GROWING_EMAIL) <= 254 < len(GROWING_EMAIL.lower()) <= 320
    priced(pos, store, "TEE", "10.00", stock=5)
    if where == "members":
        response = post_json(till, "/api/v1/members/", {"email": GROWING_EMAIL})
    else:
        response = post_json(
            till,
            "/api/v1/orders/",
            {
                "fulfillment": "in_store",
                "lines": [{"sku": "TEE", "quantity": 1}],
                "member": {"email": GROWING_EMAIL},
            },
        )
    body = assert_error(response, 400, "invalid")
    assert "email" in json.dumps(body["errors"])
    assert not Member.objects.exists() and not Order.objects.exists()


def test_an_order_whose_total_the_books_cannot_hold_is_a_400(till, pos, store):
    """1,000,000 x 10,000.00 (an ordinary price in a currency without cents) is past the
    9,999,999,999.99 an order total holds."""
    priced(pos, store, "TV", "10000.00", stock=1_000_000)
    before = StockMovement.objects.count()
    response = post_json(
        till,
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TV", "quantity": 1_000_000}]},
    )
    body = assert_error(response, 400, "amount_too_large")
    assert body["max"] == "9999999999.99"
    assert not Order.objects.exists() and StockMovement.objects.count() == before
    # Just under it is an order like any other.
    at_most = post_json(
        till,
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TV", "quantity": 999_999}]},
    )
    assert at_most.status_code == 201 and at_most.json()["totals"]["total"] == "9999990000.00"


@pytest.mark.postgres  # SQLite's integers have no such limit: it stores the figure
def test_an_order_earning_more_points_than_a_balance_holds_is_a_400_and_writes_nothing(
    till, pos, store
):
    require_postgres()
    priced(pos, store, "TV", "2500.00", stock=1_000_000)
    before = StockMovement.objects.count()
    response = post_json(
        till,
        "/api/v1/orders/",
        {
            "fulfillment": "in_store",
            "lines": [{"sku": "TV", "quantity": 1_000_000}],  # 2.5e9 points
            "member": {"email": "big.spender@example.com"},
        },
    )
    assert_error(response, 400, "out_of_range")
    assert not Order.objects.exists() and not PointsEntry.objects.exists()
    assert StockMovement.objects.count() == before


def test_an_offline_sale_too_large_for_the_books_is_rejected_alone(till, pos, store):
    """It used to be a 500 for the whole batch, after the sales before it were kept: every
    retry stopped there, and the till could never sync the sales after it."""
    priced(pos, store, "TV", "10000.00")
    priced(pos, store, "TEE", "10.00")
    response = post_json(
        till,
        "/api/v1/pos/sync/",
        {
            "sales": [
                {"client_id": "ok-1", "lines": [{"sku": "TEE", "quantity": 1}]},
                {"client_id": "big-2", "lines": [{"sku": "TV", "quantity": 1_000_000}]},
                {"client_id": "ok-3", "lines": [{"sku": "TEE", "quantity": 1}]},
            ]
        },
    )
    assert response.status_code == 200, response.content[:300]
    results = {
        r["client_id"]: (r["status"], r.get("code") or None) for r in response.json()["results"]
    }
    assert results == {
        "ok-1": ("accepted_oversold", None),
        "big-2": ("rejected", "amount_too_large"),
        "ok-3": ("accepted_oversold", None),
    }
    assert sorted(Order.objects.values_list("client_id", flat=True)) == ["ok-1", "ok-3"]


@pytest.mark.postgres  # SQLite's integers have no such limit: it stores the figure
def test_an_adjustment_past_the_range_of_a_stock_level_is_a_400_and_writes_nothing(
    till, pos, store
):
    require_postgres()
    tee = priced(pos, store, "TEE", "10.00")
    # Receipts are bounded one by one (1,000,000 a line): 2,147 of them, 21 short of the top.
    stock_receive(lines=[StockLine(tee.pk, store.pk, 1_000_000)] * 2147, reference="delivery")
    before = StockMovement.objects.count()
    response = post_json(
        till,
        "/api/v1/stock/adjustments/",
        {"sku": "TEE", "location": "lyon", "delta": 1_000_000, "reason": "receipt"},
    )
    assert_error(response, 400, "out_of_range")
    assert StockLevel.objects.get().on_hand == 2_147_000_000
    assert StockMovement.objects.count() == before


def test_sales_analytics_render_in_the_browsable_api(web):
    staff = APIClient()
    staff.raise_request_exception = False
    staff.force_login(make_staff("boss", superuser=True))
    response = staff.get("/api/v1/analytics/sales/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
