"""Order placement through the API (gunicorn, PostgreSQL, a Celery worker publishing the
channels' availability as orders reserve stock) at 1, 8 and 32 clients: orders/s and latency,
beside the same transaction as raw SQL from psycopg2 threads, same run, same worker. Each
order carries an Idempotency-Key, as the contract's storefront sends it."""

import dataclasses
import hashlib
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from .common import ROOT, ClientThreads, celery_worker, cpu_ms_per, cpu_seconds, percentiles

DURATION = float(os.environ.get("BENCH_SECONDS", "3"))
CLIENTS = [1, 8, 32]
SKUS = 1000


def prepare():
    from catalog.models import ChannelPrice, Variant
    from omnichannel.models import Channel, ChannelLocation, Location
    from omnichannel.services import api_client_create

    channel, _ = Channel.objects.get_or_create(
        code="bench-shop", defaults={"name": "Bench shop", "kind": "web", "currency": "EUR"}
    )
    store = Location.objects.get(code="bench-store")
    Location.objects.filter(pk=store.pk).update(ships=True)
    ChannelLocation.objects.get_or_create(channel=channel, location=store)
    variants = list(Variant.objects.filter(sku__startswith="BENCH-0").order_by("sku")[:SKUS])
    ChannelPrice.objects.bulk_create(
        [ChannelPrice(variant=v, channel=channel, amount=Decimal("9.90")) for v in variants],
        ignore_conflicts=True,
    )
    _, token = api_client_create(name="bench orders", channel_code="bench-shop")
    return token, [v.sku for v in variants], [(v.pk, v.sku) for v in variants], store.pk, channel.pk


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(port: int) -> subprocess.Popen:
    env = {**os.environ, "ALLOWED_HOSTS": "127.0.0.1", "DEBUG": "false"}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "omnichannel.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--config",
            "gunicorn.conf.py",  # what make run and docker-compose run
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status in (200, 503):
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError("gunicorn did not start")


@dataclasses.dataclass
class Run:
    """What one run of `run_clients` did: requests answered (and their latencies), requests
    that failed (an unexpected status, a timeout, a refused connection: counted, never
    timed) with the first failure's message, and for a `measured` run the outbox rows left
    unpublished and the CPU spent per order."""

    done: int
    latencies: list[float]
    errors: int = 0
    first_error: str | None = None
    backlog: int | None = None
    cpu: dict | None = None


def run_clients(clients: int, work, rate: float | None = None) -> Run:
    """`clients` threads calling `work` for DURATION seconds: each as fast as it is answered
    (closed loop: the figures of a saturated server, where latency is queueing, clients /
    throughput), or with `rate`, together sending that many requests a second on a fixed
    schedule (open loop: the latency a client sees at that load). Paced, a request's latency
    counts from when it was due, so a server that falls behind is charged for the wait.
    A request that fails is counted and the client goes on with a new connection: a failure
    neither stops a client (the row would name more clients than ran) nor goes unseen.
    A `work` with an `open(state)` has it called before the window: each client's
    connection is opened before the clock starts, which is once all of them are."""
    interval = clients / rate if rate else 0.0
    latencies: list[list[float]] = [[] for _ in range(clients)]
    shared = ClientThreads(clients, DURATION)

    def loop(i):
        rng = random.Random(i)
        state = {}
        try:
            if hasattr(work, "open"):
                work.open(state)
        except Exception as exc:  # the first request will try again, in the window
            shared.failed(i, exc)
        stop = shared.start()
        due = time.monotonic() + interval * i / clients
        try:
            while due < stop:
                if interval:
                    time.sleep(max(0.0, due - time.monotonic()))
                    began = due - time.monotonic() + time.perf_counter()
                else:
                    began = time.perf_counter()
                try:
                    work(rng, state)
                except Exception as exc:
                    shared.failed(i, exc)
                    if "conn" in state:  # in an unknown state: the next request opens another
                        state.pop("conn").close()
                else:
                    latencies[i].append(time.perf_counter() - began)
                due = due + interval if interval else time.monotonic()
        finally:
            if "conn" in state:
                state["conn"].close()

    ClientThreads.run(clients, loop)
    flat = [x for per in latencies for x in per]
    return Run(len(flat), flat, errors=sum(shared.errors), first_error=shared.first_error)


def order_body(sku: str) -> dict:
    """The timed order: one line, shipped from wherever the routing picks."""
    return {"fulfillment": "ship", "lines": [{"sku": sku, "quantity": 1}]}


def placement_statements(client, sku: str) -> int:
    """SQL statements of the timed request (with its Idempotency-Key), counted in-process
    once warm (bench/statements.py); `client` is a Django test client with the token."""
    from .statements import warm_count

    return warm_count(
        lambda: client.post(
            "/api/v1/orders/",
            json.dumps(order_body(sku)),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        ),
        status=201,
    )


def api_work(port: int, token: str, skus: list[str]):
    """A storefront placing orders as the contract has it: each with an Idempotency-Key of
    its own (a retry would send the same one), so every order also writes its key's record."""
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}

    def connect(state):
        conn = state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        return conn

    def work(rng, state):
        conn = state.get("conn") or connect(state)
        body = json.dumps(order_body(rng.choice(skus)))
        key = {"Idempotency-Key": str(uuid.uuid4())}
        conn.request("POST", "/api/v1/orders/", body=body, headers={**headers, **key})
        response = conn.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"order placement answered {response.status}")

    work.open = connect
    return work


def raw_work(variants: list[tuple[int, str]], location_id: int, channel_id: int):
    """What placing a one-line ship order with an Idempotency-Key writes, by hand: the key's
    record (claimed first, status 0), price look-up, stock lock, the order's id and then the
    order with its number, stock update, ledger and outbox rows, line and allocation, and
    the record's answer (status 201 and a body like the API's); after commit, the same
    wake-up of the worker as the service's (so the worker publishes these rows during this
    run, not during the API's next one). The API's savepoints are left out: they are a cost
    of its implementation, not of the work. `variants`: (id, sku) pairs."""
    import psycopg2

    from inventory.availability import sync_soon
    from omnichannel.models import Channel, Location

    channel_code = Channel.objects.get(pk=channel_id).code
    location_code = Location.objects.get(pk=location_id).code
    path = "/api/v1/orders/"

    def connect(state):
        conn = state["conn"] = psycopg2.connect(os.environ["DATABASE_URL"])
        return conn

    def work(rng, state):
        conn = state.get("conn") or connect(state)
        variant_id, sku = rng.choice(variants)
        body = json.dumps(order_body(sku), sort_keys=True, separators=(",", ":"))
        fingerprint = hashlib.sha256(f"POST {path}\n{body}".encode()).hexdigest()
        with conn, conn.cursor() as cur:
            cur.execute(
                "INSERT INTO omnichannel_idempotencyrecord (scope, key, method, path, "
                "fingerprint, status_code, response_body, created_at) VALUES ('raw:bench', "
                "%s, 'POST', %s, %s, 0, NULL, now()) RETURNING id",
                [str(uuid.uuid4()), path, fingerprint],
            )
            (record_id,) = cur.fetchone()
            cur.execute(
                "SELECT p.amount, v.name FROM catalog_channelprice p JOIN catalog_variant v "
                "ON v.id = p.variant_id WHERE p.channel_id=%s AND p.variant_id=%s "
                "AND p.published",
                [channel_id, variant_id],
            )
            amount, name = cur.fetchone()
            cur.execute(
                "SELECT id, on_hand, reserved FROM inventory_stocklevel WHERE variant_id=%s AND "
                "location_id=%s FOR UPDATE",
                [variant_id, location_id],
            )
            level_id, _on_hand, _reserved = cur.fetchone()
            cur.execute("SELECT nextval(pg_get_serial_sequence('orders_order', 'id'))")
            (order_id,) = cur.fetchone()
            number = f"RAW-{order_id}"
            cur.execute(
                "INSERT INTO orders_order (id, channel_id, number, fulfillment, status, "
                "currency, subtotal, discount, total, needs_review, client_id, points_earned, "
                "created_at, updated_at) VALUES (%s, %s, %s, 'ship', 'placed', 'EUR', %s, 0, %s, "
                "false, '', 0, now(), now())",
                [order_id, channel_id, number, amount, amount],
            )
            cur.execute(
                "UPDATE inventory_stocklevel SET reserved = reserved + 1, updated_at = "
                "now() WHERE id = %s",
                [level_id],
            )
            cur.execute(
                "INSERT INTO inventory_stockmovement (variant_id, location_id, delta, "
                "reserved_delta, reason, reference, note, created_at) VALUES (%s, %s, 0, 1, "
                "'reservation', %s, '', now())",
                [variant_id, location_id, f"order:{order_id}"],
            )
            cur.execute(
                "INSERT INTO inventory_availabilityoutbox (variant_id, created_at) "
                "VALUES (%s, now())",
                [variant_id],
            )
            cur.execute(
                "INSERT INTO orders_orderline (order_id, variant_id, sku, name, unit_price, "
                "quantity, line_total, discount) VALUES (%s, %s, %s, %s, %s, 1, %s, 0) "
                "RETURNING id",
                [order_id, variant_id, sku, name, amount, amount],
            )
            (line_id,) = cur.fetchone()
            cur.execute(
                "INSERT INTO orders_allocation (line_id, location_id, quantity) VALUES (%s, %s, 1)",
                [line_id, location_id],
            )
            answer = raw_answer(order_id, number, channel_code, location_code, sku, name, amount)
            cur.execute(
                "UPDATE omnichannel_idempotencyrecord SET status_code = 201, response_body = %s "
                "WHERE id = %s",
                [json.dumps(answer), record_id],
            )
        sync_soon()

    work.open = connect
    return work


def raw_answer(order_id, number, channel, location, sku, name, amount) -> dict:
    """The order's answer as the API stores it under the key: the same fields, so a body
    of the same size."""
    money, zero = f"{amount:.2f}", "0.00"
    return {
        "id": order_id,
        "number": number,
        "status": "placed",
        "channel": channel,
        "fulfillment": "ship",
        "location": None,
        "pickup_location": None,
        "currency": "EUR",
        "lines": [
            {
                "sku": sku,
                "name": name,
                "quantity": 1,
                "unit_price": money,
                "line_total": money,
                "discount": zero,
            }
        ],
        "totals": {"subtotal": money, "discount": zero, "total": money},
        "allocations": [{"sku": sku, "location": location, "quantity": 1}],
        "payments": [],
        "member": None,
        "points_earned": 0,
        "needs_review": False,
        "created_at": datetime.now(UTC).isoformat(),
    }


# Besides the closed loops, the paced run: this many clients together sending half the
# orders a second the API managed at that many clients in the closed loop (the same run).
PACED_CLIENTS = 8
PACED_SHARE = 0.5


def outbox_backlog() -> int:
    """Stock changes the worker has not published yet: whether sync keeps up with the load."""
    from inventory.models import AvailabilityOutbox

    return AvailabilityOutbox.objects.count()


def measured(clients: int, work, rate: float | None = None) -> Run:
    """One run, starting with the worker caught up (nothing of the previous run to publish),
    with the outbox rows left unpublished at its end and the CPU spent per order."""
    deadline = time.monotonic() + 120
    while outbox_backlog():
        if time.monotonic() > deadline:
            raise RuntimeError("the worker did not catch up within 120 s")
        time.sleep(0.1)
    before = cpu_seconds()
    run = run_clients(clients, work, rate=rate)
    cpu = cpu_ms_per(run.done, before, cpu_seconds())
    return dataclasses.replace(run, backlog=outbox_backlog(), cpu=cpu)


def row(clients: int, load: str, api: Run, raw: Run) -> dict:
    """One table row from the API's run and the raw SQL's, with the requests that failed
    (`errors`: the bench fails when any did, bench/run.py). A paced row (load `N/s`) has no
    API/SQL ratio: both sides send the requests the schedule fixes, so their counts are
    equal whatever each one's speed; its latencies are what it says."""
    paced = load != "closed"
    out = {
        "clients": clients,
        "load": load,
        "api_per_s": round(api.done / DURATION, 1),
        "api": percentiles(api.latencies),
        "raw_sql_per_s": round(raw.done / DURATION, 1),
        "raw_sql": percentiles(raw.latencies),
        "ratio": round(api.done / raw.done, 3) if raw.done and not paced else None,
        "errors": {"api": api.errors, "raw_sql": raw.errors},
    }
    first_errors = {"api": api.first_error, "raw_sql": raw.first_error}
    if any(first_errors.values()):
        out["first_error"] = first_errors
    if api.backlog is not None and raw.backlog is not None:
        out["outbox_backlog"] = {"api": api.backlog, "raw_sql": raw.backlog}
        out["cpu_ms_per_order"] = {"api": api.cpu, "raw_sql": raw.cpu}
    return out


def run() -> list[dict]:
    from django.test import Client

    token, skus, variants, location_id, channel_id = prepare()
    client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")
    queries = placement_statements(client, skus[0])  # the worker publishes them with the rest
    port = free_port()
    api, raw = api_work(port, token, skus), raw_work(variants, location_id, channel_id)
    rows = []
    with celery_worker():
        server = start_gunicorn(port)
        try:
            for clients in CLIENTS:
                closed = (measured(clients, work) for work in (api, raw))
                rows.append({"queries": queries, **row(clients, "closed", *closed)})
            closed = next(r for r in rows if r["clients"] == PACED_CLIENTS)
            rate = round(closed["api_per_s"] * PACED_SHARE)
            paced = (measured(PACED_CLIENTS, w, rate=rate) for w in (api, raw))
            rows.append({"queries": queries, **row(PACED_CLIENTS, f"{rate}/s", *paced)})
        finally:
            server.terminate()
            server.wait(timeout=20)
    return rows
