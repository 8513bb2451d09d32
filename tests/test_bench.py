"""The bench (bench/, `make bench`) measures what its tables say: the timed request is the one
the contract describes, the raw SQL baseline does the same work, and a failure is never a
quiet gap in the figures. Each test runs a bench function on a shop a few rows big."""

import random
import re
import threading
import time
import uuid
from datetime import date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

import bench.large as bench_large
import bench.orders as bench_orders
import bench.reservations as bench_reservations
import bench.run as bench_run
import bench.sync_lag as bench_sync_lag
from bench import common
from inventory import availability
from inventory.availability import availability_sync_pending
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


def test_a_failed_request_is_counted_and_its_client_goes_on(monkeypatch):
    monkeypatch.setattr(bench_orders, "DURATION", 0.3)
    calls = {}
    lock = threading.Lock()

    def work(rng, state):
        me = threading.get_ident()
        with lock:
            calls[me] = calls.get(me, 0) + 1
            first_of_all = sum(calls.values()) == 1
        if first_of_all:
            raise RuntimeError("order placement answered 500")
        time.sleep(0.001)

    run = bench_orders.run_clients(4, work)
    assert run.errors == 1
    assert run.first_error == "RuntimeError: order placement answered 500"
    assert len(calls) == 4 and min(calls.values()) > 10  # the failing client went on too
    assert run.done == sum(calls.values()) - 1  # the failure is not timed as an answer

    row = bench_orders.row(4, "closed", run, bench_orders.run_clients(4, lambda rng, s: None))
    assert row["errors"] == {"api": 1, "raw_sql": 0}
    assert common.failed_rows("order placement", [row]) == [
        "order placement (4, closed): failed {'api': 1, 'raw_sql': 0}, first "
        "{'api': 'RuntimeError: order placement answered 500', 'raw_sql': None}"
    ]
    assert (
        common.failed_rows("order placement", [{**row, "errors": {"api": 0, "raw_sql": 0}}]) == []
    )


def test_a_failed_reservation_is_counted_and_its_thread_goes_on(monkeypatch):
    monkeypatch.setattr(bench_reservations, "DURATION", 0.2)
    calls = []
    lock = threading.Lock()

    def work(rng):
        with lock:
            calls.append(1)
            first_of_all = len(calls) == 1
        if first_of_all:
            raise RuntimeError("out of stock")
        time.sleep(0.001)

    done, errors, first = bench_reservations.run_threads(2, work)
    assert (errors, first) == (1, "RuntimeError: out of stock")
    assert done == len(calls) - 1 > 10


def test_the_bench_fails_after_writing_its_results_when_a_request_failed(monkeypatch, capsys):
    written = []
    monkeypatch.setattr(common, "write_results", lambda r: written.append(r) or common.ROOT)
    clean = {"clients": 8, "load": "closed", "errors": {"api": 0, "raw_sql": 0}}
    results = {
        "reservations": [
            {"shape": "one hot SKU", "clients": 8, "errors": {"service": 0, "raw_sql": 0}}
        ],
        "order_placement": [clean],
        "large": {"reads": [{**clean, "operation": "member detail"}]},
    }
    assert bench_run.finish(results) == 0
    assert written[-1]["failed"] == []

    results["large"]["reads"].append(
        {**clean, "operation": "order list (page of 50)", "errors": {"api": 2, "raw_sql": 0}}
    )
    assert bench_run.finish(results) == 1
    assert written[-1]["failed"] == [
        "large reads (order list (page of 50), 8, closed): failed {'api': 2, 'raw_sql': 0}"
    ]
    assert "FAILED: requests failed" in capsys.readouterr().err


def _statements(send) -> int:
    with CaptureQueriesContext(connection) as captured:
        response = send()
    assert response.status_code in (200, 201), response.content
    return len(captured.captured_queries)


@pytest.mark.django_db(transaction=True)  # no test transaction: no savepoints of its own
def test_the_queries_column_is_the_warm_request_the_load_times_not_a_fresh_tokens_first(
    web, settings, monkeypatch
):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # as under gunicorn: the worker publishes
    monkeypatch.setattr(availability, "sync_soon", lambda: None)
    _, variants = _bench_shop(web)
    availability_sync_pending()

    # The first ship order of the process reads the routing's feeds; a fresh token's first
    # request looks the token up and writes its last use.
    _, token = api_client_create(name="bench orders", channel_code="web")
    orders = Client(HTTP_AUTHORIZATION=f"Token {token}")
    placement = bench_orders.placement_statements(orders, variants[0].sku)
    _, token = api_client_create(name="bench reads", channel_code="web")
    reads = Client(HTTP_AUTHORIZATION=f"Token {token}")
    skus = "&".join(f"sku={v.sku}" for v in variants)
    paths = {
        "availability (2 SKUs)": f"/api/v1/availability/?channel=web&{skus}",
        "order list (page of 50)": "/api/v1/orders/",
    }
    counted = bench_large.read_statements(reads, paths)

    timed = {name: _statements(lambda path=path: reads.get(path)) for name, path in paths.items()}
    assert counted == timed
    keys = IdempotencyRecord.objects.count()
    timed_placement = _statements(
        lambda: orders.post(
            "/api/v1/orders/",
            bench_orders.order_body(variants[0].sku),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        )
    )
    assert placement == timed_placement
    assert keys == 2  # the counted placement was the keyed one, as the bench times it


def _tables(sql: str) -> list[str]:
    """The tables a statement reads, in the order it names them."""
    return re.findall(r'(?:FROM|JOIN)\s+"?(\w+)"?', sql, re.IGNORECASE)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_read_baselines_run_each_endpoints_statements_in_autocommit_as_the_api_does(
    web, settings, monkeypatch
):
    require_postgres()
    settings.CELERY_TASK_ALWAYS_EAGER = False
    monkeypatch.setattr(availability, "sync_soon", lambda: None)
    _, variants = _bench_shop(web)
    availability_sync_pending()
    _, token = api_client_create(name="bench reads", channel_code="web")
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    body = {**bench_orders.order_body(variants[0].sku), "member": {"email": "a@example.com"}}
    placed = client.post("/api/v1/orders/", body, content_type="application/json")
    assert placed.status_code == 201, placed.content
    member = placed.json()["member"]
    member_id = member["id"] if isinstance(member, dict) else member
    statements: list[str] = []
    monkeypatch.setattr(bench_large, "_psql", lambda: _psycopg2_recording(statements))
    skus = [v.sku for v in variants]
    baselines = {
        f"/api/v1/availability/?channel=web&sku={skus[0]}&sku={skus[1]}": (
            bench_large.raw_availability(web.pk, skus)
        ),
        "/api/v1/orders/": bench_large.raw_order_list(web.pk),
        f"/api/v1/members/{member_id}/": bench_large.raw_member_detail(web.pk, [member_id]),
    }
    for path, read in baselines.items():
        assert client.get(path).status_code == 200  # warm, as the load runs
        with CaptureQueriesContext(connection) as captured:
            client.get(path)
        statements.clear()
        state = {}
        bench_large._raw(read)(random.Random(0), state)
        assert state["conn"].autocommit, "a BEGIN and a COMMIT the API does not send"
        state["conn"].close()
        api = [_tables(q["sql"]) for q in captured.captured_queries]
        assert [_tables(s) for s in statements] == api, path


def test_a_paced_row_shows_no_api_to_sql_ratio_since_the_schedule_fixes_both_counts(
    monkeypatch, capsys
):
    monkeypatch.setattr(bench_orders, "DURATION", 0.5)

    def slow(rng, state):  # an "API" at 10 ms a request
        time.sleep(0.010)

    def fast(rng, state):  # a "raw SQL" at 1 ms
        time.sleep(0.001)

    paced = bench_orders.row(
        8,
        "100/s",  # both keep up with 100 a second at 8 clients: equal counts
        bench_orders.run_clients(8, slow, rate=100),
        bench_orders.run_clients(8, fast, rate=100),
    )
    assert paced["ratio"] is None
    assert paced["api"]["p50_ms"] > paced["raw_sql"]["p50_ms"]  # what a paced row does say
    monkeypatch.setattr(bench_orders, "DURATION", 0.2)
    closed = bench_orders.row(
        1, "closed", bench_orders.run_clients(1, slow), bench_orders.run_clients(1, fast)
    )
    assert closed["ratio"] < 0.5

    common.print_table("t", ["load", "API/SQL"], [[paced["load"], paced["ratio"]]])
    assert capsys.readouterr().out.splitlines()[-1].split() == ["100/s", "-"]


@pytest.mark.django_db(transaction=True)  # real commits: the after-commit hooks run
def test_the_sync_lag_clock_starts_at_commit_before_the_worker_is_woken(web, monkeypatch):
    store = LocationFactory(code="bench-store")
    ChannelLocationFactory(channel=web, location=store)
    variant = VariantFactory(sku="BENCH-LAG")
    stock_receive(lines=[StockLine(variant.pk, store.pk, 10)], reference="bench")
    woken = []

    def slow_kick():  # a broker round trip, stretched so the order is plain
        woken.append(time.perf_counter())
        time.sleep(0.05)

    monkeypatch.setattr(availability, "sync_soon", slow_kick)
    committed = bench_sync_lag.sell_one(variant.pk, store.pk, reference="bench:0")
    assert len(woken) == 1
    assert committed <= woken[0], "the lag would leave out the worker's wake-up"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the bench's own connection must see the orders
def test_the_nightly_table_times_each_stages_own_select_bare_several_times(web, pos, monkeypatch):
    require_postgres()
    from analytics import jobs
    from analytics.models import CohortRetention, MemberScore
    from customers.models import Member
    from orders.models import Order

    purchases = [  # ann twice, one day at the till and one online; bob twice the same day
        ("ann@example.com", pos, "2026-01-04"),
        ("bob@example.com", web, "2026-01-21"),
        ("bob@example.com", web, "2026-01-21"),
        ("cid@example.com", pos, "2026-02-10"),
        ("ann@example.com", web, "2026-02-11"),
    ]
    for email, channel, day in purchases:
        made = Order.objects.create(
            channel=channel,
            fulfillment="in_store" if channel.kind == "pos" else "ship",
            status="completed",
            currency="EUR",
            subtotal=Decimal("10.00"),
            total=Decimal("10.00"),
            member=Member.objects.get_or_create(email=email)[0],
        )
        when = datetime.fromisoformat(f"{day}T12:00:00+00:00")
        Order.objects.filter(pk=made.pk).update(created_at=when)
    as_of = date(2026, 3, 31)
    jobs.nightly_run(run_date=as_of)
    statements: list[str] = []
    monkeypatch.setattr(bench_large, "_psql", lambda: _psycopg2_recording(statements))

    bare = bench_large.bare_stage_sql(as_of, runs=2)

    assert list(bare) == [name for name, _ in jobs.STAGES]  # every stage, its own figure
    assert bare["rfm"]["rows"] == MemberScore.objects.count()
    assert bare["cohorts"]["rows"] == CohortRetention.objects.count()
    with connection.cursor() as cursor:  # the member purchase days the CLV stage fits on
        cursor.execute(jobs._clv_rows_sql(), jobs._params(as_of))
        assert bare["clv"]["rows"] == len(cursor.fetchall())
    for figures in bare.values():
        assert len(figures["runs_s"]) == 2
        assert figures["median_s"] == pytest.approx(sum(figures["runs_s"]) / 2, abs=0.001)
    assert len(statements) == 2 * len(jobs.STAGES)
    assert all(s.lstrip().startswith(("WITH", "SELECT")) for s in statements)  # no write, no lock


@pytest.mark.parametrize("paced", [False, True])
def test_connections_open_before_the_timed_window_which_then_runs_in_full(monkeypatch, paced):
    monkeypatch.setattr(bench_orders, "DURATION", 0.3)
    events = []

    def work(rng, state):
        events.append(("request", time.monotonic()))
        time.sleep(0.002)

    def open_connection(state):  # a slow connect: 0.3 s, the whole window
        time.sleep(0.3)
        events.append(("open", time.monotonic()))

    work.open = open_connection
    run = bench_orders.run_clients(2, work, rate=200 if paced else None)
    kinds = [kind for kind, _ in events]
    assert kinds[:2] == ["open", "open"] and "open" not in kinds[2:]
    requests = [at for kind, at in events if kind == "request"]
    assert requests[-1] - requests[0] > 0.2  # the window was not spent connecting
    assert run.done == len(requests) and run.errors == 0


def test_each_reservation_thread_connects_before_the_timed_window(monkeypatch):
    monkeypatch.setattr(bench_reservations, "DURATION", 0.3)
    events = []

    def work(rng):
        events.append(("reserve", time.monotonic()))
        time.sleep(0.002)

    def open_connection():
        time.sleep(0.3)
        events.append(("open", time.monotonic()))

    work.open = open_connection
    done, errors, _ = bench_reservations.run_threads(2, work)
    assert [kind for kind, _ in events[:2]] == ["open", "open"]
    reserved = [at for kind, at in events if kind == "reserve"]
    assert reserved[-1] - reserved[0] > 0.2 and done == len(reserved) and errors == 0


def test_the_bench_clients_connection_is_open_before_its_first_order(answering_server):
    port, seen = answering_server
    work = bench_orders.api_work(port, "token", ["BENCH-00000"])
    state = {}
    work.open(state)
    assert state["conn"].sock is not None and not seen
    work(random.Random(0), state)
    state["conn"].close()
    assert len(seen) == 1


def test_the_results_say_whether_the_working_tree_had_changes_beside_the_commit(
    tmp_path, monkeypatch
):
    import json
    import subprocess

    def git(*args):
        subprocess.run(
            ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.com", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
        )

    git("init", "-q")
    (tmp_path / "orders.py").write_text("placed = 1\n")
    (tmp_path / ".gitignore").write_text("bench/results/*.json\n")  # as the repository's
    git("add", "orders.py", ".gitignore")
    git("commit", "-q", "-m", "one")
    monkeypatch.setattr(common, "ROOT", tmp_path)

    clean = json.loads(common.write_results({"sync_lag": {}}).read_text())
    assert (clean["dirty"], clean["changed"], clean["sync_lag"]) == (False, [], {})
    (tmp_path / "orders.py").write_text("placed = 2\n")  # measured with an edit not committed
    dirty = json.loads(common.write_results({}).read_text())
    assert (dirty["dirty"], dirty["changed"]) == (True, ["orders.py"])
    assert dirty["commit"] == clean["commit"]


def test_the_bench_prints_every_table_from_a_runs_results(monkeypatch, capsys):
    """bench/run.py's tables read the rows every bench module returns: a column renamed on
    one side breaks `make bench` only at its end, after minutes of measuring."""
    none = {"api": 0, "raw_sql": 0}
    latency = {"p50_ms": 1.0, "p99_ms": 2.0}
    cpu = {"machine": 1.0, "web": 0.5, "db": 0.3, "worker": 0.1}
    placed = {
        **{"clients": 8, "load": "closed", "queries": 19, "api_per_s": 10.0, "api": latency},
        **{"raw_sql_per_s": 20.0, "raw_sql": latency, "ratio": 0.5, "errors": none},
        **{"outbox_backlog": none, "cpu_ms_per_order": {"api": cpu, "raw_sql": cpu}},
    }
    read = {k: v for k, v in placed.items() if k not in ("outbox_backlog", "cpu_ms_per_order")}
    stages = {"rfm": {"rows": 3, "seconds": 0.5}, "clv": {"rows": 0, "skipped": "no history"}}
    large = {
        "nightly": {
            **{"orders": 10, "members": 3, "member_days": 4, "total_s": 1.0, "peak_mb": 50.0},
            **{"target_s": 60, "bare_runs": 3, "stages": stages},
            "bare_sql": {
                "rfm": {"median_s": 0.25, "runs_s": [0.2, 0.25, 0.3], "rows": 3},
                "clv": {"median_s": 0.05, "runs_s": [0.05] * 3, "rows": 4},
            },
        },
        "reads": [{"operation": "member detail", **read, "queries": 2}],
        "queries": {"channels": 3},
    }
    monkeypatch.setattr(common, "ensure_database", lambda: None)
    monkeypatch.setattr(common, "setup_django", lambda: None)
    monkeypatch.setattr(common, "write_results", lambda results: common.ROOT)
    monkeypatch.setattr(
        bench_reservations,
        "run",
        lambda: [
            {
                **{"shape": "one hot SKU", "clients": 8, "service_per_s": 5.0},
                **{"raw_sql_per_s": 10.0, "ratio": 0.5, "errors": {"service": 0, "raw_sql": 0}},
            }
        ],
    )
    monkeypatch.setattr(bench_sync_lag, "run", lambda: {"sales": 100, "p50_ms": 9, "p99_ms": 20})
    monkeypatch.setattr(bench_orders, "run", lambda: [placed, {**placed, "load": "5/s"}])
    monkeypatch.setattr(bench_run, "run_large", lambda: large)

    with pytest.raises(SystemExit) as exited:
        bench_run.main()

    assert exited.value.code == 0
    out = capsys.readouterr().out
    for title in ("Reservations", "Sync lag", "Order placement", "Where the CPU goes"):
        assert title in out
    for title in ("Nightly run", "Reads on the large demo", "SQL statements per API"):
        assert title in out


@pytest.mark.django_db
def test_the_statements_table_counts_every_operation_and_sends_orders_keyed_as_clients_do():
    """bench/statements.py runs on the demo shop: every operation answers as expected (it
    asserts each status), and the orders it counts carry an `Idempotency-Key` as the
    contract's clients send them, so their count includes the key's record and answer."""
    from io import StringIO

    from django.core.management import call_command
    from django.test import override_settings

    import bench.statements as bench_statements

    with override_settings(DEBUG=True):
        call_command("seed_demo", "--size", "small", stdout=StringIO(), stderr=StringIO())
    before = IdempotencyRecord.objects.count()

    counts = bench_statements.count()

    keyed = [name for name in counts if name.startswith("order placement")]
    assert keyed == [
        "order placement (pickup, 1 line, keyed)",
        "order placement (in-store sale, 1 line, keyed)",
    ]
    assert all(n > 0 for n in counts.values()), counts
    records = IdempotencyRecord.objects.filter(path="/api/v1/orders/")
    assert IdempotencyRecord.objects.count() - before == 4 == records.count()
    assert set(records.values_list("status_code", flat=True)) == {201}
