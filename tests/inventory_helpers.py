"""Shared checks for inventory tests."""

from django.db import connection

from inventory.models import StockLevel, StockMovement


def assert_ledger_matches_levels() -> None:
    """Summing the ledger per (variant, location) gives exactly every stock level.

    One query, as tests/conftest.py runs it after every test with a database: a level with
    no movements must be 0/0, and movements with no level are a mismatch."""
    level, movement = StockLevel._meta.db_table, StockMovement._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT COALESCE(l.variant_id, m.variant_id), COALESCE(l.location_id, m.location_id),
                   l.on_hand, l.reserved, m.on_hand, m.reserved
            FROM {level} l
            FULL OUTER JOIN (
                SELECT variant_id, location_id,
                       SUM(delta) AS on_hand, SUM(reserved_delta) AS reserved
                FROM {movement} GROUP BY variant_id, location_id
            ) m ON m.variant_id = l.variant_id AND m.location_id = l.location_id
            WHERE l.id IS NULL
               OR l.on_hand <> COALESCE(m.on_hand, 0)
               OR l.reserved <> COALESCE(m.reserved, 0)
            ORDER BY 1, 2
            LIMIT 20
            """
        )
        wrong = cursor.fetchall()
    assert not wrong, "stock levels the ledger does not sum to, as (variant, location, " + (
        "level on_hand, level reserved, ledger on_hand, ledger reserved): " + repr(wrong)
    )
