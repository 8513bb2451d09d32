"""Who may call the API and what they see: tokens, channel confinement, staff permissions."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from omnichannel.models import ApiClient
from omnichannel.services import api_client_revoke
from tests.conftest import as_client
from tests.factories import (
    ChannelFactory,
    ChannelPriceFactory,
    LocationFactory,
    make_api_client,
    make_staff,
)

pytestmark = pytest.mark.django_db

ROUTES = ["/api/v1/channels/", "/api/v1/locations/", "/api/v1/products/", "/api/v1/variants/"]


@pytest.mark.parametrize("path", ROUTES)
def test_no_token_is_401_with_error_body(api, path):
    response = api.get(path)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"


@pytest.mark.parametrize(
    "header",
    ["Token nope", "Token", "Token a b", "Token \u00e9t\u00e9", "Token " + "x" * 500],
)
def test_bad_or_malformed_token_is_401(header, web):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header.encode("utf-8").decode("latin-1"))
    response = client.get("/api/v1/products/")
    assert response.status_code == 401
    assert response.json()["code"] in {"authentication_failed", "not_authenticated"}


def test_revoked_token_is_401(web):
    client, token = make_api_client(web)
    assert as_client(token).get("/api/v1/products/").status_code == 200
    api_client_revoke(client_id=client.pk)
    response = as_client(token).get("/api/v1/products/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


def test_token_is_stored_hashed_and_last_use_recorded(web):
    client, token = make_api_client(web)
    stored = ApiClient.objects.get(pk=client.pk)
    assert token not in (stored.key_hash, stored.key_prefix)
    assert stored.key_prefix == token[:10]
    assert stored.last_used_at is None
    as_client(token).get("/api/v1/channels/")
    stored.refresh_from_db()
    assert stored.last_used_at is not None


def test_client_of_one_channel_cannot_read_another_channels_prices(web, pos, store):
    ChannelPriceFactory(channel=web)
    _, pos_token = make_api_client(pos, store)
    response = as_client(pos_token).get("/api/v1/products/?channel=web")
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == "channel_forbidden"
    assert body["channel"] == "web"
    assert as_client(pos_token).get("/api/v1/variants/?channel=web").status_code == 403


def test_client_sees_only_its_own_channel_and_its_feeding_locations(web, pos, store):
    warehouse = LocationFactory(code="wh", kind="warehouse")
    other = LocationFactory(code="elsewhere")
    ChannelFactory(code="marketplace", kind="marketplace")
    from tests.factories import ChannelLocationFactory

    ChannelLocationFactory(channel=web, location=warehouse, priority=1)
    _, token = make_api_client(web)
    client = as_client(token)
    channels = client.get("/api/v1/channels/").json()["results"]
    assert [c["code"] for c in channels] == ["web"]
    assert client.get("/api/v1/channels/pos/").status_code == 404
    locations = client.get("/api/v1/locations/").json()["results"]
    assert sorted(loc["code"] for loc in locations) == ["lyon", "wh"]
    assert client.get(f"/api/v1/locations/{other.code}/").status_code == 404


def test_channel_lists_its_feeding_locations_in_priority_order(web, store):
    warehouse = LocationFactory(code="wh", kind="warehouse", pickup=False)
    from tests.factories import ChannelLocationFactory

    ChannelLocationFactory(channel=web, location=warehouse, priority=1, safety_stock=3)
    _, token = make_api_client(web)
    body = as_client(token).get("/api/v1/channels/web/").json()
    assert body["currency"] == "EUR"
    assert body["kind"] == "web"
    assert body["locations"] == [
        {"location": "wh", "priority": 1, "safety_stock": 3},
        {"location": "lyon", "priority": 2, "safety_stock": 0},
    ]


def test_location_shows_contract_fields(web, store):
    _, token = make_api_client(web)
    body = as_client(token).get("/api/v1/locations/lyon/").json()
    assert set(body) >= {"code", "name", "kind", "ships", "pickup", "address"}
    assert body["address"]["city"] == "Lyon"


def test_staff_needs_view_permission(web):
    api = APIClient()
    nobody = make_staff("nobody")
    api.force_authenticate(nobody)
    response = api.get("/api/v1/products/")
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"

    reader = make_staff("reader", "catalog.view_product")
    api.force_authenticate(reader)
    assert api.get("/api/v1/products/").status_code == 200


def test_non_staff_user_is_refused(web):
    user = get_user_model().objects.create_user("shopper", password="pw-for-tests-123")
    api = APIClient()
    api.force_authenticate(user)
    assert api.get("/api/v1/channels/").status_code == 403


def test_staff_may_choose_any_channel_and_unknown_channel_is_400(web, pos):
    ChannelPriceFactory(channel=pos)
    api = APIClient()
    api.force_authenticate(make_staff("reader", "catalog.view_product"))
    assert api.get("/api/v1/products/?channel=pos").json()["results"]
    response = api.get("/api/v1/products/?channel=nowhere")
    assert response.status_code == 400
    assert response.json()["code"] == "unknown_channel"


def test_write_methods_are_not_allowed_on_read_only_resources(web_client):
    response = web_client.post("/api/v1/products/", {"name": "x"}, format="json")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# --- the token look-up cache (omnichannel.services.api_client_authenticate) --------------


def _statements_on_api_clients(token: str) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        assert as_client(token).get("/api/v1/channels/").status_code == 200
    return [q["sql"] for q in captured.captured_queries if "omnichannel_apiclient" in q["sql"]]


def test_a_token_used_again_is_not_looked_up_again_nor_its_use_rewritten(web):
    _, token = make_api_client(web)
    first = _statements_on_api_clients(token)
    assert len(first) == 2  # the look-up, and last_used_at written
    assert _statements_on_api_clients(token) == []


def test_a_token_revoked_by_another_process_stops_working_within_the_cache_time(
    web, settings, monkeypatch
):
    """Another web process revokes: this one learns it from the database when its cached
    look-up runs out (API_CLIENT_CACHE_SECONDS), not before."""
    import time

    from django.utils import timezone

    from omnichannel import services

    settings.API_CLIENT_CACHE_SECONDS = 5
    client, token = make_api_client(web)
    assert as_client(token).get("/api/v1/channels/").status_code == 200
    ApiClient.objects.filter(pk=client.pk).update(revoked_at=timezone.now())
    assert as_client(token).get("/api/v1/channels/").status_code == 200

    later = time.monotonic() + 5.1
    monkeypatch.setattr(services.time, "monotonic", lambda: later)
    response = as_client(token).get("/api/v1/channels/")
    assert response.status_code == 401
    assert response.json()["code"] == "authentication_failed"


@pytest.mark.django_db(transaction=True)
def test_a_revocation_committed_while_the_token_is_being_looked_up_is_not_forgotten(web, settings):
    """A request reads the client from the database; before it keeps what it read, the
    admin's revoke commits in another thread of the same process and forgets the token. The
    request must not then keep the active client it read for API_CLIENT_CACHE_SECONDS."""
    import threading

    from django.db import connection, connections

    from omnichannel import services

    settings.API_CLIENT_CACHE_SECONDS = 5
    client, token = make_api_client(web)
    services.api_client_forget()
    revoked = []

    def revoke_right_after_the_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if "omnichannel_apiclient" in sql and not revoked:

            def admin():
                try:
                    api_client_revoke(client_id=client.pk)
                finally:
                    connections.close_all()

            thread = threading.Thread(target=admin)
            thread.start()
            thread.join()
            revoked.append(True)
        return result

    with connection.execute_wrapper(revoke_right_after_the_read):
        in_flight = services.api_client_authenticate(key=token)
    assert revoked and in_flight is not None  # it read the row before the revocation
    assert services.api_client_authenticate(key=token) is None
    assert as_client(token).get("/api/v1/channels/").status_code == 401


def test_with_no_cache_time_every_request_looks_the_token_up(web, settings):
    settings.API_CLIENT_CACHE_SECONDS = 0
    client, token = make_api_client(web)
    assert as_client(token).get("/api/v1/channels/").status_code == 200
    assert len(_statements_on_api_clients(token)) == 1  # looked up; use already recorded
    api_client_revoke(client_id=client.pk)
    assert as_client(token).get("/api/v1/channels/").status_code == 401


def test_a_till_moved_to_another_store_in_the_admin_acts_there_at_once(pos, store):
    """Saving the client (the admin does) drops this process's cached look-up."""
    from tests.factories import ChannelLocationFactory, VariantFactory

    other = LocationFactory(code="nice", name="Nice store")
    ChannelLocationFactory(channel=pos, location=other, priority=2)
    variant = VariantFactory(sku="CAP-1")
    client, token = make_api_client(pos, store)

    def receive_at(code: str) -> int:
        return (
            as_client(token)
            .post(
                "/api/v1/stock/adjustments/",
                {"sku": variant.sku, "location": code, "delta": 1, "reason": "receipt"},
                format="json",
            )
            .status_code
        )

    assert receive_at("lyon") == 201
    assert receive_at("nice") == 403
    client.location = other
    client.save()
    assert receive_at("nice") == 201
    assert receive_at("lyon") == 403


def test_a_channel_edited_in_the_admin_is_seen_at_once_by_its_cached_clients(web):
    _, token = make_api_client(web)
    assert as_client(token).get("/api/v1/channels/web/").json()["currency"] == "EUR"
    web.currency = "CHF"
    web.save()
    assert as_client(token).get("/api/v1/channels/web/").json()["currency"] == "CHF"
    # The request's client is a copy: what one request does to it stays in that request.
    from omnichannel.services import api_client_authenticate

    one = api_client_authenticate(key=token)
    one.name = "changed in one request"
    assert api_client_authenticate(key=token).name != one.name


def test_staff_who_may_only_take_orders_cannot_cancel_or_hand_them_over(web, pos, store):
    """An action on an existing order or transfer changes it: the API asks `change`, as the
    admin's actions do; `add` (take an order, request a transfer) is not enough."""
    from inventory.services import StockLine, stock_receive
    from inventory.transfers import TransferItem, transfer_request
    from orders.services import LineRequest, order_place
    from tests.factories import VariantFactory

    tee = VariantFactory(sku="TEE")
    ChannelPriceFactory(variant=tee, channel=web)
    paris = LocationFactory(code="paris")
    stock_receive(lines=[StockLine(tee.pk, store.pk, 10)], reference="delivery")
    pickup = order_place(
        channel=web,
        fulfillment="pickup",
        pickup_location=store,
        lines=[LineRequest("TEE", 1)],
    )
    transfer = transfer_request(
        from_location_id=store.pk, to_location_id=paris.pk, items=[TransferItem(tee.pk, 2)]
    )
    clerk = APIClient()
    clerk.force_login(
        make_staff(
            "clerk",
            "orders.add_order",
            "orders.view_order",
            "inventory.add_transfer",
            "inventory.view_transfer",
        )
    )
    for path in (
        f"/api/v1/orders/{pickup.pk}/ready-for-pickup/",
        f"/api/v1/orders/{pickup.pk}/picked-up/",
        f"/api/v1/orders/{pickup.pk}/cancel/",
        f"/api/v1/stock/transfers/{transfer.pk}/ship/",
        f"/api/v1/stock/transfers/{transfer.pk}/cancel/",
    ):
        refused = clerk.post(path)
        assert refused.status_code == 403, path
        assert refused.json()["code"] == "permission_denied"
    pickup.refresh_from_db()
    transfer.refresh_from_db()
    assert (pickup.status, transfer.status) == ("placed", "requested")

    manager = APIClient()
    manager.force_login(make_staff("manager", "orders.change_order", "orders.view_order"))
    done = manager.post(f"/api/v1/orders/{pickup.pk}/picked-up/")
    assert done.status_code == 200 and done.json()["status"] == "picked_up"


def test_a_new_token_works_and_the_old_one_is_refused_at_once(web, settings):
    """Rotation keeps the client: same row, same channel; the old token is 401 on the very
    next request, though this process had it in its look-up cache."""
    from omnichannel.services import api_client_rotate_token

    settings.API_CLIENT_CACHE_SECONDS = 60
    client, old_token = make_api_client(web)
    assert as_client(old_token).get("/api/v1/products/").status_code == 200  # now cached
    new_token = api_client_rotate_token(client_id=client.pk)
    assert new_token != old_token
    refused = as_client(old_token).get("/api/v1/products/")
    assert refused.status_code == 401
    assert refused.json()["code"] == "authentication_failed"
    assert as_client(new_token).get("/api/v1/products/").status_code == 200
    stored = ApiClient.objects.get()
    assert stored.pk == client.pk
    assert new_token not in (stored.key_hash, stored.key_prefix)
    assert stored.key_prefix == new_token[:10]


def test_a_revoked_client_given_a_new_token_works_again_with_it_only(web):
    from omnichannel.services import api_client_rotate_token

    client, old_token = make_api_client(web)
    api_client_revoke(client_id=client.pk)
    new_token = api_client_rotate_token(client_id=client.pk)
    assert as_client(new_token).get("/api/v1/products/").status_code == 200
    assert as_client(old_token).get("/api/v1/products/").status_code == 401
    assert ApiClient.objects.get().revoked_at is None


def test_rotating_the_token_of_no_client_is_not_found(db):
    from omnichannel.services import UnknownApiClient, api_client_rotate_token

    with pytest.raises(UnknownApiClient):
        api_client_rotate_token(client_id=404)
