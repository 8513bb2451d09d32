"""`make bench`: one table per area, each figure beside a baseline measured in the same run.

PostgreSQL (DATABASE_URL, default a local `omni_bench` database this creates) and Redis
(REDIS_URL, default 127.0.0.1:6379/14). Absolute numbers depend on the machine; the ratios
against the raw baseline are what to compare across commits. Results are also written as
JSON under bench/results/.
"""

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
        ["shape", "clients", "service/s", "raw SQL/s", "service/raw"],
        [
            [r["shape"], r["clients"], r["service_per_s"], r["raw_sql_per_s"], r["ratio"]]
            for r in rows
        ],
    )
    lag = sync_lag.run()
    results["sync_lag"] = lag
    common.print_table(
        "Sync lag: committed POS sale -> web channel availability (real worker, Redis)",
        ["sales", "p50 ms", "p99 ms", "target p99"],
        [[lag["sales"], lag["p50_ms"], lag["p99_ms"], "< 1000 ms"]],
    )
    rows = orders.run()
    results["order_placement"] = rows
    common.print_table(
        f"Order placement ({orders.DURATION:.0f} s each): POST /api/v1/orders/ through gunicorn "
        "vs the same transaction as raw SQL (psycopg2), same run",
        ["clients", "API orders/s", "API p50 ms", "API p99 ms", "SQL/s", "SQL p99 ms", "API/SQL"],
        [
            [
                r["clients"],
                r["api_per_s"],
                r["api"]["p50_ms"],
                r["api"]["p99_ms"],
                r["raw_sql_per_s"],
                r["raw_sql"]["p99_ms"],
                r["ratio"],
            ]
            for r in rows
        ],
    )
    out = common.write_results(results)
    print(f"\nwritten: {out.relative_to(common.ROOT)}")


if __name__ == "__main__":
    main()
