"""Benchmarks on `seed_demo --size large` (about 1,000,000 orders, 100,000 members).

Run by bench/run.py in a child process (`python -m bench.large`) pointed at its own database
(BENCH_LARGE_DATABASE_URL, default a local `omni_bench_large`), seeded once: the first run
takes several minutes to write the history, later runs find it there. Prints one JSON object:

- nightly: the full nightly run (`manage.py run_nightly`) in its own process: seconds per
  stage and peak memory, beside each stage's own SELECT (the rows it writes or fits on,
  analytics.jobs.STAGE_ROWS_SQL) run bare by psycopg2, fetched in full, 3 times after the
  run (the median is shown); then VACUUM (ANALYZE), as autovacuum would before the next
  day's reads;
- reads: channel availability, the order list and a member's detail through gunicorn at
  several clients (p50/p99), beside the same rows read by raw SQL from psycopg2 threads
  (the statements each endpoint runs, in autocommit as the API reads);
- queries: how many SQL statements each API operation runs once warm (a fresh token's look-up
  and the first ship order's routing feeds are not counted; bench/statements.py walks the
  rest of the API as a till, the storefront and a manager).
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import date

from .common import ROOT

LARGE_URL = os.environ.get(
    "BENCH_LARGE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/omni_bench_large"
)
BULK_ORDERS = 1_000_000


def _psql():
    import psycopg2

    return psycopg2.connect(LARGE_URL)


def ensure_seeded() -> float:
    """Seed the large demo unless its history is already there; returns seconds spent."""
    from .common import ensure_database

    os.environ["DATABASE_URL"] = LARGE_URL
    ensure_database()
    with _psql() as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM orders_order WHERE client_id LIKE 'bulk-%%'")
        (done,) = cur.fetchone()
    if done >= BULK_ORDERS:
        return 0.0
    started = time.monotonic()
    print("seeding the large demo (first run only, several minutes)...", file=sys.stderr)
    subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "seed_demo", "--size", "large"],
        env={**os.environ, "DEBUG": "true", "DATABASE_URL": LARGE_URL},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - started


BARE_RUNS = 3


def bare_stage_sql(as_of: date, runs: int = BARE_RUNS) -> dict[str, dict]:
    """Each nightly stage's own SELECT (analytics.jobs.STAGE_ROWS_SQL: the rows it writes or
    fits on, without its DELETE, INSERT or LOCK), run `runs` times by psycopg2 in autocommit
    and fetched in full: per stage the median seconds, every run's, and the rows."""
    from django.conf import settings

    from analytics.jobs import STAGE_ROWS_SQL

    params = {"as_of": as_of, "tz": settings.TIME_ZONE}
    conn = _psql()
    conn.autocommit = True
    out = {}
    try:
        with conn.cursor() as cur:
            for name, rows_sql in STAGE_ROWS_SQL.items():
                sql, seconds = rows_sql(), []
                for _ in range(runs):
                    started = time.perf_counter()
                    cur.execute(sql, params)
                    rows = cur.fetchall()
                    seconds.append(time.perf_counter() - started)
                out[name] = {
                    "median_s": round(statistics.median(seconds), 3),
                    "runs_s": [round(t, 3) for t in seconds],
                    "rows": len(rows),
                }
    finally:
        conn.close()
    return out


def nightly() -> dict:
    """`run_nightly` in a child process of its own: wall time, per stage, peak memory."""
    day = time.strftime("%Y-%m-%d")
    started = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "run_nightly", "--date", day],
        env={**os.environ, "DATABASE_URL": LARGE_URL},
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise RuntimeError(f"run_nightly failed ({child.returncode})")
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    with _psql() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT stages FROM analytics_nightlyrun WHERE run_date = %s ORDER BY id DESC LIMIT 1",
            [day],
        )
        (stages,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM orders_order")
        (orders,) = cur.fetchone()
        cur.execute("SELECT count(*) FROM customers_member")
        (members,) = cur.fetchone()
    bare = bare_stage_sql(date.fromisoformat(day))  # after the run: same cache for both
    return {
        "orders": orders,
        "members": members,
        "member_days": bare["clv"]["rows"],  # what the CLV stage fits on
        "total_s": round(seconds, 2),
        "peak_mb": round(peak_mb, 1),
        "stages": stages,
        "bare_sql": bare,
        "bare_runs": BARE_RUNS,
        "target_s": 60,
    }


def settle() -> float:
    """VACUUM (ANALYZE) after the nightly run, before the reads: the run rewrites a score row
    per member (100,000 dead row versions a night), which autovacuum clears in production
    before the morning's reads; where autovacuum is off (this machine's PostgreSQL) they
    would pile up run after run under the member detail's look-ups. Returns seconds."""
    conn = _psql()
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            started = time.perf_counter()
            cur.execute("VACUUM (ANALYZE)")
            return time.perf_counter() - started
    finally:
        conn.close()


def _get(port: int, token: str):
    import http.client

    headers = {"Authorization": f"Token {token}"}

    def connect(state):
        conn = state["conn"] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        return conn

    def get(state, path):
        conn = state.get("conn") or connect(state)
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")

    get.open = connect
    return get


def _raw(read):
    """A worker running `read(cursor, rng)` on its own connection, in autocommit as the API
    reads (no ATOMIC_REQUESTS): a BEGIN and a COMMIT around each read would be two round
    trips the API does not make."""

    def connect(state):
        conn = state["conn"] = _psql()
        conn.autocommit = True
        return conn

    def work(rng, state):
        conn = state.get("conn") or connect(state)
        with conn.cursor() as cur:
            read(cur, rng)

    work.open = connect
    return work


def _fetch(cur, sql: str, params) -> list[tuple]:
    cur.execute(sql, params)
    return cur.fetchall()


# The read baselines: the statements each endpoint runs (as CaptureQueriesContext shows
# them), with the same joins, filters and columns, written by hand.


def raw_availability(channel_id: int, skus: list[str]):
    def read(cur, rng):
        _fetch(
            cur,
            "SELECT v.sku, a.available, a.as_of, a.locations FROM "
            "inventory_channelavailability a JOIN catalog_variant v ON v.id = a.variant_id "
            "WHERE a.channel_id = %s AND v.sku IN (%s, %s)",
            [channel_id, *rng.sample(skus, 2)],
        )

    return read


def raw_order_list(channel_id: int):
    """A page of 50 (51 read, to know there is a next page), then the page's lines with their
    allocations in one statement, and its payments (orders.selectors.order_page_details)."""

    def read(cur, rng):
        page = _fetch(
            cur,
            "SELECT o.id, o.number, o.status, c.code, o.fulfillment, l.code, p.code, "
            "o.currency, o.subtotal, o.discount, o.total, o.member_id, o.points_earned, "
            "o.needs_review, o.created_at FROM orders_order o "
            "JOIN omnichannel_channel c ON c.id = o.channel_id "
            "LEFT JOIN omnichannel_location l ON l.id = o.location_id "
            "LEFT JOIN omnichannel_location p ON p.id = o.pickup_location_id "
            "WHERE o.channel_id = %s ORDER BY o.id DESC LIMIT 51",
            [channel_id],
        )
        ids = tuple(order[0] for order in page[:50])
        if not ids:
            return
        _fetch(
            cur,
            "SELECT l.id, l.order_id, l.sku, l.name, l.quantity, l.unit_price, l.line_total, "
            "l.discount, loc.code, a.quantity FROM orders_orderline l "
            "LEFT JOIN orders_allocation a ON a.line_id = l.id "
            "LEFT JOIN omnichannel_location loc ON loc.id = a.location_id "
            "WHERE l.order_id IN %s ORDER BY l.id, a.id",
            [ids],
        )
        _fetch(
            cur,
            "SELECT order_id, method, amount FROM orders_payment WHERE order_id IN %s ORDER BY id",
            [ids],
        )

    return read


def raw_member_detail(channel_id: int, members: list[int]):
    """The member with its scores, seen through the channel, then its channels and stores."""

    def read(cur, rng):
        member_id = rng.choice(members)
        _fetch(
            cur,
            "SELECT DISTINCT m.*, s.* FROM customers_member m "
            "JOIN customers_memberchannel mc ON mc.member_id = m.id "
            "LEFT JOIN analytics_memberscore s ON s.member_id = m.id "
            "WHERE mc.channel_id = %s AND m.id = %s LIMIT 21",
            [channel_id, member_id],
        )
        _fetch(
            cur,
            "SELECT mc.*, c.*, l.* FROM customers_memberchannel mc "
            "JOIN omnichannel_channel c ON c.id = mc.channel_id "
            "LEFT JOIN omnichannel_location l ON l.id = mc.location_id "
            "WHERE mc.member_id IN (%s)",
            [member_id],
        )

    return read


PLACEMENT = "order placement (ship, 1 line, with Idempotency-Key)"


def read_statements(client, paths: dict[str, str]) -> dict[str, int]:
    """SQL statements of each GET, warm (bench/statements.py): the figure of every timed
    request, not of a fresh token's first one."""
    from .statements import warm_count

    return {name: warm_count(lambda path=path: client.get(path)) for name, path in paths.items()}


def reads() -> tuple[list[dict], dict]:
    from django.test import Client

    from customers.models import MemberChannel
    from inventory.models import ChannelAvailability
    from omnichannel.models import Channel
    from omnichannel.services import api_client_create

    from . import statements
    from .orders import (
        PACED_SHARE,
        free_port,
        placement_statements,
        row,
        run_clients,
        start_gunicorn,
    )

    web = Channel.objects.get(code="web")
    _, token = api_client_create(name="bench reads", channel_code="web")
    skus = list(
        ChannelAvailability.objects.filter(channel=web)
        .order_by("variant__sku")
        .values_list("variant__sku", flat=True)[:2000]
    )
    members = list(
        MemberChannel.objects.filter(channel=web)
        .order_by("member_id")
        .values_list("member_id", flat=True)
        .distinct()[:5000]
    )

    def availability_path(rng):
        a, b = rng.sample(skus, 2)
        return f"/api/v1/availability/?channel=web&sku={a}&sku={b}"

    operations = {
        "availability (2 SKUs)": (16, availability_path, raw_availability(web.pk, skus)),
        "order list (page of 50)": (8, lambda rng: "/api/v1/orders/", raw_order_list(web.pk)),
        "member detail": (
            8,
            lambda rng: f"/api/v1/members/{rng.choice(members)}/",
            raw_member_detail(web.pk, members),
        ),
    }

    # Statements per operation, counted in-process on the same data, warm as the load runs.
    client = Client(HTTP_AUTHORIZATION=f"Token {token}")
    queries = read_statements(
        client, {name: path_for(random.Random(0)) for name, (_, path_for, _) in operations.items()}
    )
    # And the write path: one ship order, one line, as the order placement bench sends it.
    sku = (
        ChannelAvailability.objects.filter(channel=web, available__gte=5)
        .values_list("variant__sku", flat=True)
        .first()
    )
    queries[PLACEMENT] = placement_statements(client, sku)
    queries.update(statements.count())  # the rest of the API, as a till and a manager use it

    port = free_port()
    server = start_gunicorn(port)
    rows = []
    try:
        get = _get(port, token)
        # Each read alone (one client: the latency a till or a manager sees), under load as
        # fast as answered (the clients share the machine's two cores with PostgreSQL and
        # gunicorn), and paced at half the rate that load reached (orders.PACED_SHARE).
        for name, (clients, path_for, read) in operations.items():

            def api(rng, state, path_for=path_for):
                get(state, path_for(rng))

            api.open = get.open

            raw = _raw(read)
            for n in (1, clients):
                done = row(n, "closed", run_clients(n, api), run_clients(n, raw))
                rows.append({"operation": name, "queries": queries[name], **done})
            rate = round(rows[-1]["api_per_s"] * PACED_SHARE)
            paced = (run_clients(clients, work, rate=rate) for work in (api, raw))
            rows.append(
                {"operation": name, "queries": queries[name], **row(clients, f"{rate}/s", *paced)}
            )
    finally:
        server.terminate()
        server.wait(timeout=20)
    return rows, queries


def main() -> None:
    import django

    seeded = ensure_seeded()
    os.environ["DATABASE_URL"] = LARGE_URL
    os.environ["ALLOWED_HOSTS"] = "127.0.0.1,testserver"  # the in-process query count
    django.setup()
    result = {"seed_s": round(seeded, 1), "nightly": nightly()}
    result["vacuum_s"] = round(settle(), 1)
    print(f"VACUUM (ANALYZE) after the nightly run: {result['vacuum_s']} s", file=sys.stderr)
    result["reads"], result["queries"] = reads()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
