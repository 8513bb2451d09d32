"""The bench (bench/, `make bench`) measures what its tables say: the timed request is the one
the contract describes, the raw SQL baseline does the same work, and a failure is never a
quiet gap in the figures. Each test runs a bench function on a shop a few rows big."""

import random
import re
import threading
import uuid
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

import bench.orders as bench_orders
from inventory import availability
from inventory.services import StockLine, stock_receive
from omnichannel.models import IdempotencyRecord
from omnichannel.services import api_client_create
from tests.concurrency import require_postgres
from tests.factories import (
    ChannelLocationFactory,
    ChannelPriceFactory,
    LocationFactory,
    VariantFactory,
)


@pytest.fixture
def answering_server():
    """A local HTTP server answering every POST 201 and keeping the requests' headers."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as gunicorn answers the bench

        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            seen.append(dict(self.headers))
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], seen
    server.shutdown()
    server.server_close()


def _bench_shop(web):
    """bench-store shipping for the web channel, two SKUs priced and stocked there."""
    store = LocationFactory(code="bench-store", ships=True)
    ChannelLocationFactory(channel=web, location=store)
    variants = [VariantFactory(sku=f"BENCH-0000{i}") for i in range(2)]
    for variant in variants:
        ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("9.90"))
        stock_receive(lines=[StockLine(variant.pk, store.pk, 100)], reference="bench")
    return store, variants


def _psycopg2_recording(statements: list[str]):
    """A psycopg2 connection to the test database that records every statement it sends."""
    import psycopg2
    from psycopg2.extras import LoggingConnection

    class Recording(LoggingConnection):
        def filter(self, msg, curs):
            statements.append(msg.decode() if isinstance(msg, bytes) else msg)

    s = connection.settings_dict
    conn = psycopg2.connect(
        dbname=s["NAME"],
        user=s["USER"],
        password=s["PASSWORD"],
        host=s["HOST"],
        port=s["PORT"],
        connection_factory=Recording,
    )
    conn.initialize(None)
    return conn


WRITE = re.compile(r'^\s*(INSERT INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)


def _writes(statements: list[str]) -> list[tuple[str, str]]:
    """(verb, table) of each INSERT and UPDATE, in order."""
    return [(m[1].upper(), m[2]) for s in statements if (m := WRITE.match(s))]


def test_the_timed_web_order_sends_a_fresh_idempotency_key_as_the_contract_has_it(
    answering_server,
):
    port, seen = answering_server
    work = bench_orders.api_work(port, "token", ["BENCH-00000"])
    state = {}
    work(random.Random(0), state)
    work(random.Random(0), state)
    state["conn"].close()
    keys = [headers.get("Idempotency-Key") for headers in seen]
    assert all(keys) and keys[0] != keys[1]  # a retry would reuse one; two orders never do
    assert [str(uuid.UUID(k)) for k in keys] == keys


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the baseline's own connection must see the shop
def test_the_raw_baseline_writes_what_a_keyed_order_writes_its_record_and_answer_included(
    web, settings, monkeypatch
):
    require_postgres()
    settings.CELERY_TASK_ALWAYS_EAGER = False  # as under gunicorn: the worker publishes
    monkeypatch.setattr(availability, "sync_soon", lambda: None)  # no broker round trip
    store, variants = _bench_shop(web)
    _, token = api_client_create(name="bench orders", channel_code="web")
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")

    def place():
        return client.post(
            "/api/v1/orders/",
            bench_orders.order_body(variants[0].sku),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )

    assert place().status_code == 201  # warm: the token, the routing's feeds
    with CaptureQueriesContext(connection) as captured:
        answer = place()
    assert answer.status_code == 201, answer.content
    api_writes = _writes([q["sql"] for q in captured.captured_queries])

    statements: list[str] = []
    work = bench_orders.raw_work([(variants[0].pk, variants[0].sku)], store.pk, web.pk)
    state = {"conn": _psycopg2_recording(statements)}
    work(random.Random(0), state)
    state["conn"].close()

    assert _writes(statements) == api_writes
    record = IdempotencyRecord.objects.get(scope="raw:bench")
    assert record.status_code == 201
    assert re.fullmatch(r"[0-9a-f]{64}", record.fingerprint)
    assert set(record.response_body) == set(answer.json())  # an answer of the API's size
    assert not [s for s in statements if "SAVEPOINT" in s]  # the API's own cost, not the work's
