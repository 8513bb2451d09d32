"""Benchmarks on `seed_demo --size large` (about 1,000,000 orders, 100,000 members).

Run by bench/run.py in a child process (`python -m bench.large`) pointed at its own database
(BENCH_LARGE_DATABASE_URL, default a local `omni_bench_large`), seeded once: the first run
takes several minutes to write the history, later runs find it there. Prints one JSON object:

- nightly: the full nightly run (`manage.py run_nightly`) in its own process: seconds per
  stage and peak memory, beside the bare SQL aggregation every stage starts from (member
  purchase days over all orders) run and fetched by psycopg2; then VACUUM (ANALYZE), as
  autovacuum would before the next day's reads;
- reads: channel availability, the order list and a member's detail through gunicorn at
  several clients (p50/p99), beside the same rows read by raw SQL from psycopg2 threads;
- queries: how many SQL statements each API operation runs once warm (a fresh token's look-up
  and the first ship order's routing feeds are not counted; bench/statements.py walks the
  rest of the API as a till, the storefront and a manager).
"""

import json
import os
import random
import subprocess
import sys
import time

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


def bare_aggregation_seconds() -> tuple[float, int]:
    """The scan every nightly stage starts from, as plain SQL fetched by psycopg2."""
    from django.conf import settings

    from analytics.jobs import _purchase_days_sql

    sql = (
        _purchase_days_sql()
        .replace("%(as_of)s", "current_date")
        .replace("%(tz)s", f"'{settings.TIME_ZONE}'")
    )
    with _psql() as conn, conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql)
        rows = cur.fetchall()
        return time.perf_counter() - started, len(rows)


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
    bare, member_days = bare_aggregation_seconds()
    return {
        "orders": orders,
        "members": members,
        "member_days": member_days,
        "total_s": round(seconds, 2),
        "peak_mb": round(peak_mb, 1),
        "stages": stages,
        "bare_sql_s": round(bare, 3),
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

    def get(state, path):
        conn = state.get("conn") or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        state["conn"] = conn
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}")

    return get


def _raw(sql_for):
    """A worker running `sql_for(rng)` -> [(sql, params), ...] on its own connection."""

    def work(rng, state):
        conn = state.get("conn") or _psql()
        state["conn"] = conn
        with conn, conn.cursor() as cur:
            for sql, params in sql_for(rng):
                cur.execute(sql, params)
                cur.fetchall()

    return work


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
        "availability (2 SKUs)": (
            16,
            availability_path,
            lambda rng: [
                (
                    "SELECT v.sku, a.available, a.as_of, a.locations FROM "
                    "inventory_channelavailability a JOIN catalog_variant v ON v.id = a.variant_id "
                    "WHERE a.channel_id = %s AND v.sku IN (%s, %s)",
                    [web.pk, *rng.sample(skus, 2)],
                )
            ],
        ),
        "order list (page of 50)": (
            8,
            lambda rng: "/api/v1/orders/",
            lambda rng: [
                (
                    "SELECT * FROM orders_order WHERE channel_id = %s ORDER BY id DESC LIMIT 51",
                    [web.pk],
                ),
                (
                    "SELECT l.* FROM orders_orderline l WHERE l.order_id IN (SELECT id FROM "
                    "orders_order WHERE channel_id = %s ORDER BY id DESC LIMIT 50)",
                    [web.pk],
                ),
            ],
        ),
        "member detail": (
            8,
            lambda rng: f"/api/v1/members/{rng.choice(members)}/",
            lambda rng: [
                ("SELECT * FROM customers_member WHERE id = %s", [mid := rng.choice(members)]),
                ("SELECT * FROM customers_memberchannel WHERE member_id = %s", [mid]),
                ("SELECT * FROM analytics_memberscore WHERE member_id = %s", [mid]),
            ],
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
        for name, (clients, path_for, sql_for) in operations.items():

            def api(rng, state, path_for=path_for):
                get(state, path_for(rng))

            raw = _raw(sql_for)
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
