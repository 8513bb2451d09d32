"""`make bench`: one table per area, each figure beside a baseline measured in the same run.

PostgreSQL (DATABASE_URL, default a local `omni_bench` database this creates) and Redis
(REDIS_URL, default 127.0.0.1:6379/14). Absolute numbers depend on the machine; the ratios
against the raw baseline are what to compare across commits. Results are also written as
JSON under bench/results/.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common


def main() -> None:
    common.ensure_database()
    common.setup_django()
    from bench import orders, reservations, sync_lag

    results = {}
    rows = reservations.run()
    results["reservations"] = rows
    common.print_table(
        f"Reservations per second ({reservations.DURATION:.0f} s each): inventory.services "
        "vs the same transaction as raw SQL (psycopg2), same threads, same run",
        ["shape", "clients", "service/s", "raw SQL/s", "service/raw", "errors"],
        [
            [
                r["shape"],
                r["clients"],
                r["service_per_s"],
                r["raw_sql_per_s"],
                r["ratio"],
                f"{r['errors']['service']}/{r['errors']['raw_sql']}",
            ]
            for r in rows
        ],
    )
    lag = sync_lag.run()
    results["sync_lag"] = lag
    common.print_table(
        "Sync lag: committed POS sale -> web channel availability (real worker, Redis)",
        ["sales", "p50 ms", "p99 ms", "target p99"],
        [[lag["sales"], lag["p50_ms"], lag["p99_ms"], "< 250 ms"]],
    )
    rows = orders.run()
    results["order_placement"] = rows
    common.print_table(
        f"Order placement ({orders.DURATION:.0f} s each): POST /api/v1/orders/ (with an "
        "Idempotency-Key) through gunicorn vs the same transaction as raw SQL (psycopg2), "
        "same run, a Celery worker publishing availability meanwhile (`queries`: SQL "
        "statements of one order, counted in-process once warm; `left`: outbox rows the "
        "worker had not published when the run ended); load `closed`: each client sends as soon as "
        "answered (saturated), `N/s`: the clients together send N a second, both sides the "
        "same count, so no API/SQL there (targets, on the closed row at 8 clients: API/SQL "
        ">= 0.25, p99 < 50 ms)",
        [
            "clients",
            "load",
            "queries",
            "API orders/s",
            "API p50 ms",
            "API p99 ms",
            "SQL/s",
            "SQL p99 ms",
            "API/SQL",
            "left API/SQL",
            "errors API/SQL",
        ],
        [
            [
                r["clients"],
                r["load"],
                r["queries"],
                r["api_per_s"],
                r["api"]["p50_ms"],
                r["api"]["p99_ms"],
                r["raw_sql_per_s"],
                r["raw_sql"]["p99_ms"],
                r["ratio"],
                f"{r['outbox_backlog']['api']}/{r['outbox_backlog']['raw_sql']}",
                f"{r['errors']['api']}/{r['errors']['raw_sql']}",
            ]
            for r in rows
        ],
    )
    cpu_rows = [r for r in rows if r.get("cpu_ms_per_order", {}).get("api")]
    if cpu_rows:
        common.print_table(
            "Where the CPU goes, ms per order (Linux /proc, same runs): the machine's total "
            "(the bench's own clients included) for the API and for raw SQL, and the API's "
            "share in gunicorn, PostgreSQL and the worker (raw SQL's PostgreSQL backends end "
            "with the run: only the machine's total counts them)",
            ["clients", "load", "API", "web", "PostgreSQL", "worker", "raw SQL", "SQL/API"],
            [
                [
                    r["clients"],
                    r["load"],
                    (api := r["cpu_ms_per_order"]["api"])["machine"],
                    api["web"],
                    api["db"],
                    api["worker"],
                    (raw := r["cpu_ms_per_order"]["raw_sql"])["machine"],
                    round(raw["machine"] / api["machine"], 3) if api["machine"] else None,
                ]
                for r in cpu_rows
            ],
        )
    large = run_large()
    results["large"] = large
    nightly = large["nightly"]
    common.print_table(
        f"Nightly run on the large demo ({nightly['orders']:,} orders, {nightly['members']:,} "
        f"members, {nightly['member_days']:,} member purchase days), its own process: "
        f"{nightly['total_s']} s in all (target < {nightly['target_s']} s), peak "
        f"{nightly['peak_mb']} MB; beside each stage, its own SELECT run bare by psycopg2 "
        f"and fetched in full (no DELETE, INSERT or LOCK; median of {nightly['bare_runs']} "
        "runs after the nightly run)",
        ["stage", "rows", "seconds", "bare SQL s", "SQL rows", "stage/bare"],
        [
            [
                name,
                stage.get("rows"),
                stage.get("seconds", stage.get("skipped")),
                (bare := nightly["bare_sql"].get(name, {})).get("median_s"),
                bare.get("rows"),
                (
                    round(stage["seconds"] / bare["median_s"], 2)
                    if "seconds" in stage and bare.get("median_s")
                    else None
                ),
            ]
            for name, stage in nightly["stages"].items()
        ],
    )
    common.print_table(
        "Reads on the large demo through gunicorn vs the endpoint's statements by raw SQL "
        "(psycopg2, autocommit as the API reads), "
        "same clients, same run, load as above (targets, on the closed rows at 16 clients "
        "for availability and 8 for the others: p99 < 10 ms availability, < 50 ms "
        "lists/detail)",
        [
            "operation",
            "clients",
            "load",
            "queries",
            "API/s",
            "API p50 ms",
            "API p99 ms",
            "SQL p99 ms",
            "API/SQL",
            "errors API/SQL",
        ],
        [
            [
                r["operation"],
                r["clients"],
                r["load"],
                r["queries"],
                r["api_per_s"],
                r["api"]["p50_ms"],
                r["api"]["p99_ms"],
                r["raw_sql"]["p99_ms"],
                r["ratio"],
                f"{r['errors']['api']}/{r['errors']['raw_sql']}",
            ]
            for r in large["reads"]
        ],
    )
    common.print_table(
        "SQL statements per API operation (counted in-process on the large demo, each "
        "after one warm-up call: a fresh token's look-up is not counted)",
        ["operation", "queries"],
        [[name, count] for name, count in large["queries"].items()],
    )
    sys.exit(finish(results))


def finish(results: dict) -> int:
    """Write the results and give the exit status: 1, after naming them, when requests
    failed in any table (its figures are then of fewer requests than it says), else 0."""
    failed = [
        *common.failed_rows("reservations", results["reservations"]),
        *common.failed_rows("order placement", results["order_placement"]),
        *common.failed_rows("large reads", results["large"]["reads"]),
    ]
    results["failed"] = failed
    out = common.write_results(results)
    print(f"\nwritten: {out.relative_to(common.ROOT)}")
    if failed:
        print("\nFAILED: requests failed during the run:", *failed, sep="\n  ", file=sys.stderr)
        return 1
    return 0


def run_large() -> dict:
    """bench/large.py in a child process of its own: another database, a fresh Django."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.large"],
        cwd=common.ROOT,
        env=env,
        check=True,
        stdout=subprocess.PIPE,  # the JSON; progress goes to stderr as it happens
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
