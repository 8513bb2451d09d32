"""`make bench`: one table, each figure beside a baseline measured in the same run.

Runs against PostgreSQL (DATABASE_URL, or a local `omni_bench` database it creates), seeds the
demo data once, then times each API operation in-process (Django's test client: no network)
beside the same SQL run bare through psycopg2. The ratio is the figure that matters; absolute
times depend on the machine. Results are also written as JSON under bench/results/.
"""

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/omni_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")

ITERATIONS = int(os.environ.get("BENCH_ITERATIONS", "200"))


def ensure_database() -> None:
    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[-1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    import psycopg2

    conn = psycopg2.connect(admin)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def timed(fn, iterations: int) -> list[float]:
    fn()  # warm caches and connections
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
        "per_s": round(len(ordered) / sum(ordered), 1),
    }


def main() -> None:
    ensure_database()
    manage = [sys.executable, str(ROOT / "manage.py")]
    env = {**os.environ, "DEBUG": "true"}  # seed_demo refuses production mode
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], check=True, env=env)
    subprocess.run(
        [*manage, "seed_demo", "--size", "small"], check=True, env=env, stdout=subprocess.DEVNULL
    )

    import django

    django.setup()
    import psycopg2
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from omnichannel.services import api_client_create

    settings.ALLOWED_HOSTS = ["*"]
    client_obj, token = api_client_create(name="bench", channel_code="web")
    http = Client(HTTP_AUTHORIZATION=f"Token {token}")

    operations = {
        "products list (page of 50)": "/api/v1/products/?page_size=50",
        "variant by barcode (POS scan)": None,  # filled below
        "channel detail": "/api/v1/channels/web/",
    }
    from catalog.models import Variant

    barcode = (
        Variant.objects.filter(prices__channel__code="web")
        .values_list("barcode", flat=True)
        .first()
    )
    operations["variant by barcode (POS scan)"] = f"/api/v1/variants/?barcode={barcode}"

    raw = psycopg2.connect(os.environ["DATABASE_URL"])
    raw.autocommit = True
    rows = []
    try:
        for label, path in operations.items():
            with CaptureQueriesContext(connection) as captured:
                response = http.get(path)
            assert response.status_code == 200, (path, response.status_code, response.content)
            statements = [q["sql"] for q in captured.captured_queries]

            def replay(statements=statements):
                with raw.cursor() as cur:
                    for sql in statements:
                        cur.execute(sql)
                        cur.fetchall()

            api = summary(timed(lambda path=path: http.get(path), ITERATIONS))
            bare = summary(timed(replay, ITERATIONS))
            rows.append(
                {
                    "operation": label,
                    "queries": len(statements),
                    "api": api,
                    "raw_sql": bare,
                    "ratio_of_raw_rate": round(api["per_s"] / bare["per_s"], 3),
                }
            )
    finally:
        raw.close()
        client_obj.delete()

    header = f"{'operation':34} {'queries':>7} {'api p50':>9} {'api p99':>9} {'api/s':>8} "
    header += f"{'sql p50':>9} {'sql/s':>8} {'api/sql':>8}"
    print(
        f"\nIn-process API (Django test client, no network) vs the same SQL through psycopg2; "
        f"{ITERATIONS} iterations each."
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['operation']:34} {row['queries']:>7} {row['api']['p50_ms']:>7.2f}ms "
            f"{row['api']['p99_ms']:>7.2f}ms {row['api']['per_s']:>8.0f} "
            f"{row['raw_sql']['p50_ms']:>7.2f}ms {row['raw_sql']['per_s']:>8.0f} "
            f"{row['ratio_of_raw_rate']:>8.2f}"
        )
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    out = results / f"{stamp}.json"
    out.write_text(json.dumps({"commit": commit, "iterations": ITERATIONS, "rows": rows}, indent=2))
    print(f"\nwritten: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
