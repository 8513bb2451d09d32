"""Reservations per second, through inventory.services, beside the same statements as raw
SQL from psycopg2 threads in the same run: one hot SKU, and 10,000 SKUs spread."""

import os
import random
import threading
import time

from .common import ClientThreads

DURATION = float(os.environ.get("BENCH_SECONDS", "3"))
CLIENTS = [1, 8, 32]
SPREAD = 10_000

RAW_RESERVE = """
SELECT id, on_hand, reserved FROM inventory_stocklevel
 WHERE variant_id = %(v)s AND location_id = %(l)s FOR UPDATE;
"""


def prepare():
    from django.db import connection

    from catalog.models import Category, Product, Variant
    from inventory.models import StockLevel
    from omnichannel.models import Location

    location, _ = Location.objects.get_or_create(
        code="bench-store", defaults={"name": "Bench store", "kind": "store"}
    )
    category, _ = Category.objects.get_or_create(slug="bench", defaults={"name": "Bench"})
    product, _ = Product.objects.get_or_create(
        code="BENCH", defaults={"name": "Bench product", "category": category}
    )
    have = Variant.objects.filter(product=product).count()
    Variant.objects.bulk_create(
        [Variant(product=product, sku=f"BENCH-{i:05d}") for i in range(have, SPREAD)]
    )
    ids = list(Variant.objects.filter(product=product).order_by("sku").values_list("id", flat=True))
    StockLevel.objects.bulk_create(
        [StockLevel(variant_id=v, location_id=location.pk) for v in ids], ignore_conflicts=True
    )
    # Plenty of stock, set directly: the bench measures reservations, not receipts.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE inventory_stocklevel SET on_hand = 100000000, reserved = 0 "
            "WHERE location_id = %s",
            [location.pk],
        )
    return location.pk, ids


def run_threads(clients: int, work) -> tuple[int, int, str | None]:
    """`clients` threads calling `work` for DURATION seconds: (reservations made, reservations
    that failed, the first failure's message). A failure is counted and the thread goes on.
    Each thread's connection is opened (`work.open()`) before the window, which starts once
    all of them are."""
    counts = [0] * clients
    shared = ClientThreads(clients, DURATION)

    def loop(i):
        from django.db import connections

        rng = random.Random(i)
        try:
            if hasattr(work, "open"):
                work.open()
        except Exception as exc:  # the first reservation will try again, in the window
            shared.failed(i, exc)
        stop = shared.start()
        try:
            while time.monotonic() < stop:
                try:
                    work(rng)
                except Exception as exc:
                    shared.failed(i, exc)
                else:
                    counts[i] += 1
        finally:
            connections.close_all()  # this thread's Django connection
            close = getattr(work, "close", None)
            if close:
                close()

    ClientThreads.run(clients, loop)
    return sum(counts), sum(shared.errors), shared.first_error


def orm_worker(location_id, pick):
    from inventory.services import StockLine, stock_reserve

    def work(rng):
        stock_reserve(lines=[StockLine(pick(rng), location_id, 1)], reference="bench")

    def open_connection():  # this thread's Django connection
        from django.db import connection

        connection.ensure_connection()

    work.open = open_connection
    return work


def raw_worker(location_id, pick):
    """The same transaction by hand: lock, check, update, ledger row, outbox row."""
    import psycopg2

    local = threading.local()

    def conn():
        if not hasattr(local, "conn"):
            local.conn = psycopg2.connect(os.environ["DATABASE_URL"])
        return local.conn

    def work(rng):
        c = conn()
        variant_id = pick(rng)
        with c, c.cursor() as cur:
            cur.execute(RAW_RESERVE, {"v": variant_id, "l": location_id})
            level_id, on_hand, reserved = cur.fetchone()
            if on_hand - reserved < 1:
                raise RuntimeError("out of stock")
            cur.execute(
                "UPDATE inventory_stocklevel SET reserved = reserved + 1, updated_at = now() "
                "WHERE id = %s",
                [level_id],
            )
            cur.execute(
                "INSERT INTO inventory_stockmovement (variant_id, location_id, delta, "
                "reserved_delta, reason, reference, note, created_at) "
                "VALUES (%s, %s, 0, 1, 'reservation', 'bench', '', now())",
                [variant_id, location_id],
            )
            cur.execute(
                "INSERT INTO inventory_availabilityoutbox (variant_id, created_at) "
                "VALUES (%s, now())",
                [variant_id],
            )

    def close():
        if hasattr(local, "conn"):
            local.conn.close()

    work.open = conn
    work.close = close
    return work


def run() -> list[dict]:
    from django.db import connection

    location_id, ids = prepare()
    hot = ids[0]
    shapes = {"one hot SKU": lambda rng: hot, f"{SPREAD:,} SKUs": lambda rng: rng.choice(ids)}
    rows = []
    for shape, pick in shapes.items():
        for clients in CLIENTS:
            figures, errors, first_errors = {}, {}, {}
            for kind, factory in (("service", orm_worker), ("raw_sql", raw_worker)):
                work = factory(location_id, pick)
                done, errors[kind], first_errors[kind] = run_threads(clients, work)
                figures[kind] = round(done / DURATION, 1)
            rows.append(
                {
                    "shape": shape,
                    "clients": clients,
                    "service_per_s": figures["service"],
                    "raw_sql_per_s": figures["raw_sql"],
                    "ratio": (
                        round(figures["service"] / figures["raw_sql"], 3)
                        if figures["raw_sql"]
                        else None
                    ),
                    "errors": errors,
                    **({"first_error": first_errors} if any(first_errors.values()) else {}),
                }
            )
    with connection.cursor() as cursor:  # leave no outbox backlog behind
        cursor.execute("DELETE FROM inventory_availabilityoutbox")
    return rows
