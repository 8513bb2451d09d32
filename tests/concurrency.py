"""Real threads against the real database, for the tests that prove concurrency safety."""

import threading
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
