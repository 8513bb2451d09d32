"""Real threads against the real database, for the tests that prove concurrency safety."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, connections


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.fail("row-lock tests need PostgreSQL: CI has it; locally start it")


def run_in_threads(count: int, work):
    """Run `work(i)` in `count` threads released at the same instant; return the results.
    Each thread closes its own database connection when done."""
    barrier = threading.Barrier(count)

    def job(i):
        try:
            barrier.wait(timeout=30)
            return work(i)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(job, range(count)))


def waiting_on_locks() -> int:
    """Sessions of this test database queued on a lock. Outside a transaction: PostgreSQL
    reads pg_stat_activity once per transaction, so a poll inside one sees no change."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0]


def until_waiting(count: int) -> None:
    """Return once `count` sessions are queued on a lock; fail after 10 s."""
    deadline = time.monotonic() + 10
    while waiting_on_locks() < count:
        assert time.monotonic() < deadline, f"fewer than {count} sessions queued on a lock"
        time.sleep(0.02)
