"""Writing many rows at once, for demo and benchmark data only (`seed_demo --size large`).

The services write one business operation at a time, which is what the system is for; a
million historical orders through them would take hours. These helpers write prepared rows:
`COPY ... FROM STDIN` on PostgreSQL, one `executemany` INSERT elsewhere (SQLite). They run
inside the caller's transaction and check nothing: the caller builds rows that keep the
invariants (each app's demo module owns its own tables).
"""

import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from django.db import connection
from django.db.models import Model

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value) -> str:
    """One value in PostgreSQL's COPY text format."""
    kind = type(value)
    if kind is int or kind is Decimal:
        return str(value)
    if kind is str:
        return value.translate(_ESCAPES)
    if value is None:
        return r"\N"
    if kind is bool:
        return "t" if value else "f"
    if kind is datetime:
        return value.isoformat()
    return str(value).translate(_ESCAPES)


def copy_rows(
    model: type[Model],
    columns: Sequence[str],
    rows: Iterable[Sequence],
    *,
    use_copy: bool | None = None,
) -> int:
    """Insert `rows` (tuples in the order of `columns`, database column names) into the
    model's table; returns how many. `use_copy` defaults to "on PostgreSQL"."""
    rows = list(rows)
    if not rows:
        return 0
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    if use_copy is None:
        use_copy = connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        if use_copy:
            buffer = io.StringIO()
            for row in rows:
                buffer.write("\t".join(map(_copy_text, row)))
                buffer.write("\n")
            buffer.seek(0)
            cursor.copy_expert(f"COPY {table} ({names}) FROM STDIN", buffer)
        else:
            fields = {f.column: f for f in model._meta.concrete_fields}
            prepare = [fields[c].get_db_prep_save for c in columns]
            placeholders = ", ".join(["%s"] * len(columns))
            cursor.executemany(
                f"INSERT INTO {table} ({names}) VALUES ({placeholders})",
                [
                    [p(value, connection) for p, value in zip(prepare, row, strict=True)]
                    for row in rows
                ],
            )
    return len(rows)


def next_ids(model: type[Model], count: int) -> list[int]:
    """`count` primary keys for new rows of `model`, taken from its sequence on PostgreSQL
    (so concurrent writers never collide), after the current maximum elsewhere (SQLite holds
    one writer at a time, and the caller is inside its write transaction)."""
    if count <= 0:
        return []
    table = model._meta.db_table
    pk = model._meta.pk.column
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [table, pk, count],
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(
            f"SELECT COALESCE(MAX({connection.ops.quote_name(pk)}), 0) "
            f"FROM {connection.ops.quote_name(table)}"
        )
        start = cursor.fetchone()[0] + 1
    return list(range(start, start + count))


def refresh_planner_statistics() -> None:
    """After a bulk load, let PostgreSQL's planner see the new rows at once (`ANALYZE`).

    Autovacuum would get there in its own time; until then the planner takes the freshly
    COPYed tables for nearly empty and picks plans that cost the first readers whole seconds
    (measured: an order-list prefetch at 0.2-0.5 s before, 1 ms after). SQLite: nothing to do.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
