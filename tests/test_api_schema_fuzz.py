"""Schemathesis walks every operation of `/api/schema/` with generated input, valid and not.

What it proves, per operation: no input makes the server answer 5xx, and every answer (its
status code, content type and body) is one the schema declares. The run is bounded (a fixed
number of examples per operation, derandomized, plus schemathesis' boundary-value phase) and
runs twice: as a POS till's API client (Token) and as a superuser (session, with CSRF). A small
shop is seeded, and besides the bodies generated from the schema the hooks draw well-formed
ones that name the seeded SKUs, locations, orders and members, so that requests get past
validation into the services (orders placed, stock adjusted, transfers shipped...).
"""

from contextlib import contextmanager
from decimal import Decimal

import pytest
import schemathesis
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from customers.services import Contact, member_upsert
from inventory import transfers
from inventory.services import StockLine, stock_receive
from orders import services as order_services
from tests.factories import (
    ChannelFactory,
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    VariantFactory,
    make_api_client,
    make_staff,
)

pytestmark = pytest.mark.django_db

MAX_EXAMPLES = 20
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
SKUS = ["TEE", "MUG", "CAP"]
LOCATIONS = ["lyon", "paris", "wh"]
CHANNELS = ["pos", "web"]


def _seed_shop() -> dict:
    """web <- wh, lyon; pos <- lyon, paris. Three SKUs priced in both, stocked everywhere;
    orders in several states, two members, a requested and a shipped transfer."""
    web = ChannelFactory(code="web", kind="web")
    pos = ChannelFactory(code="pos", kind="pos")
    lyon = LocationFactory(code="lyon")
    paris = LocationFactory(code="paris", ships=False)
    wh = LocationFactory(code="wh", kind="warehouse", pickup=False)
    ChannelLocationFactory(channel=web, location=wh, priority=1)
    ChannelLocationFactory(channel=web, location=lyon, priority=2)
    ChannelLocationFactory(channel=pos, location=lyon, priority=1)
    ChannelLocationFactory(channel=pos, location=paris, priority=2)
    variants = {}
    for sku in SKUS:
        variants[sku] = VariantFactory(sku=sku)
        for channel in (web, pos):
            ChannelPriceFactory(variant=variants[sku], channel=channel, amount=Decimal("10.00"))
    stock_receive(
        lines=[
            StockLine(variant.pk, location.pk, 10_000)
            for variant in variants.values()
            for location in (lyon, paris, wh)
        ],
        reference="delivery",
    )
    alice, _ = member_upsert(contact=Contact(email="alice@example.com"), channel=pos, location=lyon)
    bob, _ = member_upsert(contact=Contact(phone="+33612345678"), channel=web)

    def place(channel, fulfillment, **extra):
        return order_services.order_place(
            channel=channel,
            fulfillment=fulfillment,
            lines=[order_services.LineRequest(sku="TEE", quantity=2)],
            **extra,
        )

    orders = [
        place(pos, "in_store", location=lyon, member=alice),
        place(web, "pickup", pickup_location=lyon, member=bob),
        place(web, "ship"),
        place(web, "ship", location=wh),
    ]
    order_services.order_transition(order_id=orders[3].pk, action="ship")
    requested = transfers.transfer_request(
        from_location_id=lyon.pk,
        to_location_id=paris.pk,
        items=[transfers.TransferItem(variants["MUG"].pk, 3)],
    )
    shipped = transfers.transfer_request(
        from_location_id=lyon.pk,
        to_location_id=paris.pk,
        items=[transfers.TransferItem(variants["CAP"].pk, 2)],
    )
    transfers.transfer_ship(transfer_id=shipped.pk)
    return {
        "pos": pos,
        "lyon": lyon,
        "orders": [str(o.pk) for o in orders] + [o.number for o in orders],
        "order_numbers": [o.number for o in orders],
        "transfers": [requested.pk, shipped.pk],
        "members": [alice.pk, bob.pk],
        "products": [variant.product_id for variant in variants.values()],
    }


# --- well-formed bodies naming seeded rows, drawn besides the schema's own ----------------------

QUANTITY = st.integers(min_value=1, max_value=5)
LINES = st.lists(
    st.fixed_dictionaries({"sku": st.sampled_from(SKUS), "quantity": QUANTITY}),
    min_size=1,
    max_size=3,
)
CONTACT = st.one_of(
    st.fixed_dictionaries({"email": st.sampled_from(["alice@example.com", "new@example.com"])}),
    st.fixed_dictionaries({"phone": st.sampled_from(["+33612345678", "06 11 22 33 44"])}),
)


def _order_body(shop):
    return st.fixed_dictionaries(
        {
            "fulfillment": st.sampled_from(["in_store", "pickup", "ship"]),
            "lines": LINES,
        },
        optional={
            "channel": st.sampled_from(CHANNELS),
            "location": st.sampled_from(LOCATIONS),
            "pickup_location": st.sampled_from(LOCATIONS),
            "member": st.one_of(st.sampled_from(shop["members"]), CONTACT),
            "redeem_points": st.integers(min_value=1, max_value=50),
            "discount": st.sampled_from(["0.00", "1.50"]),
        },
    )


def _adjustment_body(shop):
    where = {"sku": st.sampled_from(SKUS), "location": st.sampled_from(LOCATIONS)}
    return st.one_of(
        st.fixed_dictionaries(
            {
                **where,
                "delta": st.integers(min_value=-5, max_value=5).filter(bool),
                "reason": st.sampled_from(["receipt", "damage", "theft", "correction"]),
            }
        ),
        st.fixed_dictionaries(
            {**where, "counted": st.integers(min_value=0, max_value=50), "reason": st.just("count")}
        ),
    )


def _transfer_body(shop):
    return st.fixed_dictionaries(
        {
            "from_location": st.sampled_from(LOCATIONS),
            "to_location": st.sampled_from(LOCATIONS),
            "lines": LINES,
        }
    )


def _receive_body(shop):
    received = st.fixed_dictionaries(
        {"sku": st.sampled_from(SKUS), "quantity": st.integers(min_value=0, max_value=5)}
    )
    return st.fixed_dictionaries({}, optional={"lines": st.lists(received, max_size=2)})


def _return_body(shop):
    return st.fixed_dictionaries(
        {
            # Or a number no order has: 404 not_found (the schema listed no 404 here).
            "order": st.sampled_from([*shop["order_numbers"], "WEB-999999"]),
            "location": st.sampled_from(LOCATIONS),
            "lines": st.lists(
                st.fixed_dictionaries(
                    {"sku": st.sampled_from(SKUS), "quantity": st.integers(1, 3)}
                ),
                min_size=1,
                max_size=2,
            ),
            "restock": st.booleans(),
        }
    )


def _pos_sync_body(shop):
    sale = st.fixed_dictionaries(
        {"client_id": st.uuids().map(str), "lines": LINES},
        optional={"sold_at": st.just("2026-01-15T10:30:00+01:00")},
    )
    return st.fixed_dictionaries({"sales": st.lists(sale, min_size=1, max_size=3)})


def _member_body(shop):
    return CONTACT


def _merge_body(shop):
    return st.fixed_dictionaries({"other": st.sampled_from(shop["members"])})


WELL_FORMED = {
    ("POST", "/api/v1/orders/"): _order_body,
    ("POST", "/api/v1/stock/adjustments/"): _adjustment_body,
    ("POST", "/api/v1/stock/transfers/"): _transfer_body,
    ("POST", "/api/v1/stock/transfers/{id}/receive/"): _receive_body,
    ("POST", "/api/v1/returns/"): _return_body,
    ("POST", "/api/v1/pos/sync/"): _pos_sync_body,
    ("POST", "/api/v1/members/"): _member_body,
    ("POST", "/api/v1/members/{id}/merge/"): _merge_body,
}


def _seeded_path_values(path: str, name: str, shop: dict) -> list:
    if name == "sku":
        return SKUS
    if name == "code":
        return CHANNELS if "channels" in path else LOCATIONS
    for collection in ("orders", "transfers", "members", "products"):
        if f"/{collection}/" in path:
            return shop[collection]
    return []


@contextmanager
def connection_kept_open():
    """Requests go to the WSGI app in-process, inside the test's transaction. Like Django's test
    client, keep the connection open at the start and end of each request: it is the test's,
    and CONN_MAX_AGE=0 would otherwise close it under the transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


# Loaded at import, from the app itself: the schema the project serves is the one walked.
# (schemathesis' lazy `from_fixture` loader does not work with pytest 9's node ids.)
with connection_kept_open():
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
# Undeclared methods answer DRF's 405 everywhere; probing each operation with them costs time.
schema.config.phases.coverage.unexpected_methods = set()

# What the running test seeded, for the generation hooks (filled by the `shop` fixture).
SEEDED: dict = {}


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """The generated value, or one naming a seeded object."""
    choices = {}
    for name, value in (path_parameters or {}).items():
        seeded = _seeded_path_values(context.operation.path, name, SEEDED)
        choices[name] = st.sampled_from([value, *seeded]) if seeded else st.just(value)
    return st.fixed_dictionaries(choices)


@schema.hook
def flatmap_body(context, body):
    """The generated body, or a well-formed one naming seeded rows."""
    well_formed = WELL_FORMED.get((context.operation.method.upper(), context.operation.path))
    if well_formed is None:
        return st.just(body)
    return st.one_of(st.just(body), well_formed(SEEDED))


@pytest.fixture(autouse=True)
def _in_process_requests():
    with connection_kept_open():
        yield


@pytest.fixture
def shop():
    SEEDED.clear()
    SEEDED.update(_seed_shop())
    yield SEEDED
    SEEDED.clear()


@pytest.fixture
def till_headers(shop):
    _, token = make_api_client(shop["pos"], shop["lyon"], name="fuzz till")
    return {"Authorization": f"Token {token}"}


@pytest.fixture
def staff_session(shop):
    """A superuser's session cookie and a CSRF token (session auth checks CSRF on writes)."""
    user = make_staff("fuzz-admin", superuser=True)
    browser = Client()
    browser.force_login(user)
    csrf = "a" * 32  # a CSRF secret: the cookie and the header carry the same one
    return {
        "cookies": {"sessionid": browser.cookies["sessionid"].value, "csrftoken": csrf},
        "headers": {"X-CSRFToken": csrf},
    }


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_as_a_pos_till_client(case, till_headers):
    case.call_and_validate(headers=till_headers, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_as_a_superuser_session(case, staff_session):
    case.call_and_validate(
        headers=staff_session["headers"], cookies=staff_session["cookies"], checks=CHECKS
    )


def test_the_schema_validates_without_warnings(tmp_path):
    """`manage.py spectacular --validate --fail-on-warn`: the schema is valid OpenAPI 3 and
    drf-spectacular had to guess nothing."""
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml")
    )
