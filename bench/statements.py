"""SQL statements per API operation, counted in-process on the large demo (bench/large.py).

Each operation is called once to warm up (the token look-up, the client's last use) and then
counted: what a till, the storefront or a manager's page costs the database every time.
Writes act on the demo's own stock and orders, as a till and the storefront would.
"""

import json
import uuid
from urllib.parse import quote

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

STORE = "lyon-centre"
OTHER_STORE = "paris-marais"


def warm_count(send, status: int = 200) -> int:
    """SQL statements of `send()` (a request) as every request after the first runs them:
    sent once to warm up (a fresh token's look-up and its last use written, the ship
    routing's channel feeds read), then counted."""

    def checked():
        response = send()
        assert response.status_code == status, (response.status_code, response.content)

    checked()
    with CaptureQueriesContext(connection) as captured:
        checked()
    return len(captured.captured_queries)


def _clients():
    from django.contrib.auth import get_user_model

    from omnichannel.services import api_client_create

    _, web_token = api_client_create(name="bench statements web", channel_code="web")
    _, till_token = api_client_create(
        name="bench statements till", channel_code="pos", location_code=STORE
    )
    staff = Client()
    staff.force_login(get_user_model().objects.filter(is_superuser=True).order_by("pk").first())
    return (
        Client(HTTP_AUTHORIZATION=f"Token {web_token}"),
        Client(HTTP_AUTHORIZATION=f"Token {till_token}"),
        staff,
    )


def _stocked_variant():
    """A variant sold on the web and at the till's store, with stock there to sell."""
    from inventory.models import StockLevel

    level = (
        StockLevel.objects.filter(
            location__code=STORE,
            on_hand__gte=20,
            reserved=0,
            variant__prices__channel__code="web",
            variant__prices__published=True,
        )
        .filter(variant__prices__channel__code="pos")
        .select_related("variant")
        .order_by("variant_id")
        .first()
    )
    if level is None:
        raise RuntimeError(f"no variant with stock at {STORE} priced on web and pos")
    return level.variant


def count() -> dict[str, int]:
    from customers.models import Member

    web, till, staff = _clients()
    variant = _stocked_variant()
    sku = variant.sku
    member = Member.objects.filter(email__isnull=False).exclude(email="").order_by("pk").first()
    counts: dict[str, int] = {}
    run = uuid.uuid4().hex[:12]  # each bench run's offline sales are new ones, not replays

    def call(name, client, method, path, body=None, status=200, headers=None):
        def send():
            if method == "get":
                return client.get(path)
            return client.post(
                path, json.dumps(body or {}), content_type="application/json", headers=headers
            )

        with CaptureQueriesContext(connection) as captured:
            response = send()
        assert response.status_code == status, (name, response.status_code, response.content)
        counts[name] = len(captured.captured_queries)
        return response.json()

    for client in (web, till, staff):  # authenticate once: the look-up is then cached
        assert client.get("/api/v1/channels/").status_code == 200

    call("channels", web, "get", "/api/v1/channels/")
    call("products (page of 50)", web, "get", "/api/v1/products/")
    search = quote(variant.product.name[:6])
    call("products search", web, "get", f"/api/v1/products/?search={search}")
    call(
        "variant by barcode (POS scan)", till, "get", f"/api/v1/variants/?barcode={variant.barcode}"
    )
    call("stock at a store", till, "get", f"/api/v1/stock/?location={STORE}&sku={sku}")
    call("stock ledger (page)", till, "get", f"/api/v1/stock/movements/?location={STORE}")
    call("member look-up by email", web, "get", f"/api/v1/members/?email={quote(member.email)}")
    call("member points", web, "get", f"/api/v1/members/{member.pk}/points/")
    call("member upsert (existing)", web, "post", "/api/v1/members/", {"email": member.email})

    line = [{"sku": sku, "quantity": 1}]

    def place(name, client, **body):
        """An order as the contract's clients send it: with an `Idempotency-Key` (a new one,
        so it is placed, not replayed)."""
        key = {"Idempotency-Key": f"bench-statements-{uuid.uuid4().hex}"}
        return call(
            name, client, "post", "/api/v1/orders/", {**body, "lines": line}, 201, headers=key
        )

    for _ in range(2):  # the second is counted
        pickup = place(
            "order placement (pickup, 1 line, keyed)",
            web,
            fulfillment="pickup",
            pickup_location=STORE,
        )
    call("order detail", web, "get", f"/api/v1/orders/{pickup['id']}/")
    call("order cancel", web, "post", f"/api/v1/orders/{pickup['id']}/cancel/")
    for _ in range(2):
        sale = place(
            "order placement (in-store sale, 1 line, keyed)",
            till,
            fulfillment="in_store",
            location=STORE,
        )
        call(
            "return at a store (restock)",
            till,
            "post",
            "/api/v1/returns/",
            {"order": sale["id"], "location": STORE, "lines": line, "restock": True},
            status=201,
        )
        call(
            "stock adjustment (receipt)",
            till,
            "post",
            "/api/v1/stock/adjustments/",
            {"sku": sku, "location": STORE, "delta": 1, "reason": "receipt"},
            status=201,
        )
    for n in range(2):
        call(
            "offline POS sync (1 sale)",
            till,
            "post",
            "/api/v1/pos/sync/",
            {"sales": [{"client_id": f"bench-statements-{run}-{n}", "lines": line}]},
        )
        transfer = call(
            "transfer request",
            till,
            "post",
            "/api/v1/stock/transfers/",
            {"from_location": STORE, "to_location": OTHER_STORE, "lines": line},
            status=201,
        )
        call("transfer ship", till, "post", f"/api/v1/stock/transfers/{transfer['id']}/ship/")
        call(
            "transfer receive",
            staff,
            "post",
            f"/api/v1/stock/transfers/{transfer['id']}/receive/",
            {"lines": line},
        )
    call("analytics sales by channel", staff, "get", "/api/v1/analytics/sales/?by=channel")
    call("analytics RFM segments", staff, "get", "/api/v1/analytics/rfm/")
    call("analytics CLV (page)", staff, "get", "/api/v1/analytics/clv/")
    call("analytics retention", staff, "get", "/api/v1/analytics/retention/")
    return counts
