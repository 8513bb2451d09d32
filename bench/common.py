"""Shared bench plumbing: the database, timing, the table and the JSON record."""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/omni_bench")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# One bench client sends thousands of orders a minute: counted as in production, never refused.
os.environ.setdefault("THROTTLE_RATE", "10000000/min")


def ensure_database() -> None:
    import psycopg2

    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[-1]
    conn = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], check=True)


def setup_django() -> None:
    import django

    django.setup()


@contextlib.contextmanager
def celery_worker():
    """A real Celery worker consuming from Redis for the block, as the Procfile and
    docker-compose start it (prefork, 2 processes)."""
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "omnichannel",
            "worker",
            "--concurrency=2",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=20)


class ClientThreads:
    """What the load's client threads share: each one's failures (counted, with the first
    message, so a failure neither stops a client nor goes unseen) and the timed window,
    which starts once every client has opened its connection (`start`, by each thread)."""

    def __init__(self, clients: int, duration: float) -> None:
        self.errors = [0] * clients
        self._first: list[str | None] = [None] * clients
        self._window: dict[str, float] = {}
        self._barrier = threading.Barrier(
            clients, action=lambda: self._window.update(stop=time.monotonic() + duration)
        )

    def failed(self, i: int, exc: Exception) -> None:
        self.errors[i] += 1
        self._first[i] = self._first[i] or f"{type(exc).__name__}: {exc}"

    def start(self) -> float:
        """Wait for every client; the window's end (time.monotonic())."""
        self._barrier.wait()
        return self._window["stop"]

    @property
    def first_error(self) -> str | None:
        return next((e for e in self._first if e), None)

    @staticmethod
    def run(clients: int, loop) -> None:
        threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def cpu_seconds() -> dict[str, float] | None:
    """CPU time used so far (Linux /proc): the whole machine (every process, the bench's
    own clients included) and, of the processes still running, gunicorn's, PostgreSQL's and
    the Celery worker's. None where there is no /proc."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    out = {"machine": (sum(ticks) - ticks[3] - ticks[4]) / hz, "web": 0.0, "db": 0.0, "worker": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        group = (
            "web"
            if "gunicorn" in cmd
            else "worker"
            if "celery" in cmd
            else "db"
            if cmd.startswith("postgres")
            else None
        )
        if group:
            out[group] += (int(fields[11]) + int(fields[12])) / hz
    return out


def cpu_ms_per(done: int, before: dict | None, after: dict | None) -> dict | None:
    """CPU milliseconds per operation between two `cpu_seconds()` readings."""
    if not done or before is None or after is None:
        return None
    return {k: round((after[k] - before[k]) * 1000 / done, 2) for k in before}


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": None, "p99_ms": None}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
    }


def print_table(title: str, columns: list[str], rows: list[list]) -> None:
    """A title and right-aligned columns; a figure that does not apply (None) prints as -."""
    rows = [["-" if v is None else v for v in row] for row in rows]
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(str(c).rjust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).rjust(w) for v, w in zip(row, widths, strict=True)))


def failed_rows(area: str, rows: list[dict]) -> list[str]:
    """A line for each row of a table where requests failed (its `errors`): the bench fails
    when there is any, after printing the tables and writing the results."""
    failed = []
    for r in rows:
        if any(r.get("errors", {}).values()):
            where = ", ".join(
                str(r[k]) for k in ("operation", "shape", "clients", "load") if k in r
            )
            first = f", first {r['first_error']}" if r.get("first_error") else ""
            failed.append(f"{area} ({where}): failed {r['errors']}{first}")
    return failed


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout


def write_results(results: dict) -> Path:
    """The results as JSON under bench/results/, with the commit measured and whether the
    working tree had changes beside it (`dirty`, and which files): then the figures are
    not the commit's alone."""
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    commit = _git("rev-parse", "--short", "HEAD").strip()
    changed = [line[3:] for line in _git("status", "--porcelain").splitlines()]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = out_dir / f"{stamp}.json"
    record = {"commit": commit, "dirty": bool(changed), "changed": changed, **results}
    out.write_text(json.dumps(record, indent=2, default=str))
    return out
