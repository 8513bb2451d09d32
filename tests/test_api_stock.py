"""Stock over the API: levels, the ledger, adjustments and counts, scoping, idempotency."""

import pytest
from rest_framework.test import APIClient

from inventory.models import StockLevel, StockMovement
from inventory.services import StockLine, stock_receive, stock_reserve
from omnichannel.models import IdempotencyRecord
from tests.concurrency import require_postgres, run_in_threads
from tests.conftest import as_client
from tests.factories import ChannelLocationFactory, LocationFactory, VariantFactory, make_staff
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db


@pytest.fixture
def tee(store):
    variant = VariantFactory(sku="TEE-M")
    stock_receive(lines=[StockLine(variant.pk, store.pk, 10)], reference="delivery")
    stock_reserve(lines=[StockLine(variant.pk, store.pk, 3)], reference="order:1")
    return variant


def test_stock_list_shows_on_hand_reserved_available(tee, pos_client):
    body = pos_client.get("/api/v1/stock/?sku=TEE-M&location=lyon").json()
    [row] = body["results"]
    assert {k: row[k] for k in ("sku", "location", "on_hand", "reserved", "available")} == {
        "sku": "TEE-M",
        "location": "lyon",
        "on_hand": 10,
        "reserved": 3,
        "available": 7,
    }


def test_stock_list_is_confined_to_the_clients_locations(tee, pos, pos_client):
    elsewhere = LocationFactory(code="madrid")  # feeds no channel of this client
    stock_receive(lines=[StockLine(tee.pk, elsewhere.pk, 4)], reference="delivery")
    locations = {r["location"] for r in pos_client.get("/api/v1/stock/").json()["results"]}
    assert locations == {"lyon"}


def test_stock_list_runs_a_constant_number_of_queries(
    store, pos_client, django_assert_max_num_queries
):
    def add(n):
        for _ in range(n):
            stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 5)], reference="d")

    add(1)
    pos_client.get("/api/v1/stock/")
    with django_assert_max_num_queries(20) as few:
        pos_client.get("/api/v1/stock/")
    baseline = len(few.captured_queries)  # read now: the query log is a bounded deque
    add(25)
    with django_assert_max_num_queries(baseline):
        assert len(pos_client.get("/api/v1/stock/").json()["results"]) == 26
    with django_assert_max_num_queries(baseline):
        assert len(pos_client.get("/api/v1/stock/movements/").json()["results"]) == 26


def test_movements_show_the_ledger_newest_first(tee, pos_client):
    rows = pos_client.get("/api/v1/stock/movements/?sku=TEE-M").json()["results"]
    assert [(r["reason"], r["delta"], r["reserved_delta"], r["reference"]) for r in rows] == [
        ("reservation", 0, 3, "order:1"),
        ("receipt", 10, 0, "delivery"),
    ]


def test_pos_adjusts_damage_at_its_own_store(tee, pos_client):
    response = pos_client.post(
        "/api/v1/stock/adjustments/",
        {"sku": "TEE-M", "location": "lyon", "delta": -2, "reason": "damage", "note": "torn"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["level"]["on_hand"] == 8
    assert body["level"]["available"] == 5
    assert body["movement"]["reason"] == "damage"
    assert body["movement"]["delta"] == -2
    movement = StockMovement.objects.latest("id")
    assert movement.api_client_id is not None and movement.note == "torn"
    assert_ledger_matches_levels()


def test_cycle_count_through_the_api(tee, pos_client):
    response = pos_client.post(
        "/api/v1/stock/adjustments/",
        {"sku": "TEE-M", "location": "lyon", "counted": 9, "reason": "count"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["movement"]["delta"] == -1
    assert StockLevel.objects.get(variant=tee).on_hand == 9
    same = pos_client.post(
        "/api/v1/stock/adjustments/",
        {"sku": "TEE-M", "location": "lyon", "counted": 9, "reason": "count"},
        format="json",
    )
    assert same.status_code == 201 and same.json()["movement"] is None


def test_pos_may_not_adjust_another_store_and_web_client_may_not_adjust(tee, web, pos, store):
    other = LocationFactory(code="paris")
    ChannelLocationFactory(channel=pos, location=other, priority=5)
    from tests.factories import make_api_client

    _, till = make_api_client(pos, store)
    response = as_client(till).post(
        "/api/v1/stock/adjustments/",
        {"sku": "TEE-M", "location": "paris", "delta": 5, "reason": "receipt"},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["code"] == "location_forbidden"
    _, storefront = make_api_client(web)
    response = as_client(storefront).post(
        "/api/v1/stock/adjustments/",
        {"sku": "TEE-M", "location": "lyon", "delta": 5, "reason": "receipt"},
        format="json",
    )
    assert response.status_code == 403
    assert StockMovement.objects.filter(reason="receipt").count() == 1


@pytest.mark.parametrize(
    ("body", "status_code", "code"),
    [
        ({"sku": "NOPE", "location": "lyon", "delta": 1, "reason": "receipt"}, 400, "unknown_sku"),
        (
            {"sku": "TEE-M", "location": "lyon", "delta": 1, "counted": 3, "reason": "count"},
            400,
            "invalid",
        ),
        ({"sku": "TEE-M", "location": "lyon", "reason": "receipt"}, 400, "invalid"),
        ({"sku": "TEE-M", "location": "lyon", "delta": 0, "reason": "receipt"}, 400, "invalid"),
        ({"sku": "TEE-M", "location": "lyon", "delta": 1, "reason": "gift"}, 400, "invalid"),
        (
            {"sku": "TEE-M", "location": "lyon", "delta": "many", "reason": "receipt"},
            400,
            "invalid",
        ),
        (
            {"sku": "TEE-M", "location": "lyon", "delta": 10**12, "reason": "receipt"},
            400,
            "invalid",
        ),
        (
            {"sku": "TEE-M", "location": "lyon", "delta": -11, "reason": "theft"},
            409,
            "negative_stock",
        ),
        (
            {"sku": "TEE-\u00e9\u0000", "location": "lyon", "delta": 1, "reason": "receipt"},
            400,
            "invalid",
        ),
        (
            {"sku": "TEE-M", "location": "nowhere", "delta": 1, "reason": "receipt"},
            400,
            "unknown_location",
        ),
        ([1, 2, 3], 400, "invalid"),
    ],
)
def test_bad_adjustments_are_clear_4xx_and_write_nothing(tee, pos_client, body, status_code, code):
    before = StockMovement.objects.count()
    response = pos_client.post("/api/v1/stock/adjustments/", body, format="json")
    assert response.status_code == status_code, response.json()
    assert response.json()["code"] == code
    assert StockMovement.objects.count() == before
    assert StockLevel.objects.get(variant=tee).on_hand == 10


def test_malformed_json_is_400_parse_error(tee, pos_client):
    response = pos_client.generic(
        "POST", "/api/v1/stock/adjustments/", "{not json", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_staff_adjust_with_permission_only(tee):
    api = APIClient()
    api.force_authenticate(make_staff("viewer", "inventory.view_stocklevel"))
    body = {"sku": "TEE-M", "location": "lyon", "delta": 1, "reason": "correction"}
    assert api.post("/api/v1/stock/adjustments/", body, format="json").status_code == 403
    api.force_authenticate(make_staff("clerk", "inventory.add_stockmovement"))
    response = api.post("/api/v1/stock/adjustments/", body, format="json")
    assert response.status_code == 201
    assert StockMovement.objects.latest("id").created_by.username == "clerk"


def test_idempotency_key_replays_the_first_answer_and_changes_nothing(tee, pos_client):
    body = {"sku": "TEE-M", "location": "lyon", "delta": 5, "reason": "receipt"}
    first = pos_client.post(
        "/api/v1/stock/adjustments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    again = pos_client.post(
        "/api/v1/stock/adjustments/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert StockLevel.objects.get(variant=tee).on_hand == 15
    other = pos_client.post(
        "/api/v1/stock/adjustments/",
        {**body, "delta": 6},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k-1",
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert StockLevel.objects.get(variant=tee).on_hand == 15
    assert_ledger_matches_levels()


def test_a_refused_answer_is_replayed_but_a_validation_error_is_not_kept(tee, pos_client):
    refused = {"sku": "TEE-M", "location": "lyon", "delta": -50, "reason": "theft"}
    first = pos_client.post(
        "/api/v1/stock/adjustments/", refused, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert first.status_code == 409
    replay = pos_client.post(
        "/api/v1/stock/adjustments/", refused, format="json", HTTP_IDEMPOTENCY_KEY="k-2"
    )
    assert replay.status_code == 409 and replay.json() == first.json()

    invalid = {"sku": "TEE-M", "location": "lyon", "reason": "receipt"}
    assert (
        pos_client.post(
            "/api/v1/stock/adjustments/", invalid, format="json", HTTP_IDEMPOTENCY_KEY="k-3"
        ).status_code
        == 400
    )
    assert not IdempotencyRecord.objects.filter(key="k-3").exists()
    fixed = {**invalid, "delta": 1}
    assert (
        pos_client.post(
            "/api/v1/stock/adjustments/", fixed, format="json", HTTP_IDEMPOTENCY_KEY="k-3"
        ).status_code
        == 201
    )


def test_idempotency_keys_belong_to_one_client(tee, pos, store):
    from tests.factories import make_api_client

    _, till_a = make_api_client(pos, store, name="a")
    _, till_b = make_api_client(pos, store, name="b")
    body = {"sku": "TEE-M", "location": "lyon", "delta": 1, "reason": "receipt"}
    for token in (till_a, till_b):
        response = as_client(token).post(
            "/api/v1/stock/adjustments/", body, format="json", HTTP_IDEMPOTENCY_KEY="same"
        )
        assert response.status_code == 201
    assert StockLevel.objects.get(variant=tee).on_hand == 12


@pytest.mark.parametrize("key", ["", " ", "x" * 256, "tab\there"])
def test_malformed_idempotency_key_is_400(tee, pos_client, key):
    body = {"sku": "TEE-M", "location": "lyon", "delta": 1, "reason": "receipt"}
    response = pos_client.post(
        "/api/v1/stock/adjustments/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"


@pytest.mark.django_db(transaction=True)
def test_same_key_sent_at_the_same_moment_applies_once(pos, store):
    require_postgres()
    from tests.factories import make_api_client

    variant = VariantFactory(sku="MUG")
    _, token = make_api_client(pos, store)
    body = {"sku": "MUG", "location": "lyon", "delta": 1, "reason": "receipt"}

    def send(_):
        response = as_client(token).post(
            "/api/v1/stock/adjustments/", body, format="json", HTTP_IDEMPOTENCY_KEY="burst"
        )
        return response.status_code, response.json()

    answers = run_in_threads(8, send)
    assert [status for status, _ in answers] == [201] * 8
    assert all(body == answers[0][1] for _, body in answers)
    assert StockLevel.objects.get(variant=variant).on_hand == 1
    assert StockMovement.objects.filter(variant=variant).count() == 1
