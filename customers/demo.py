"""Members and their points for the bulk demo history (`seed_demo --size large`).

Rows are prepared by orders.demo_bulk; this module owns how they land in the customers
tables: members with a normalized email / E.164 phone, where they were seen, and points
entries with each balance moved by the sum of its new entries, so the points ledger still
sums to every member's balance."""

from collections.abc import Sequence
from datetime import datetime

from django.db import connection

from omnichannel.bulk import copy_rows

from .models import Member, MemberChannel, PointsEntry

# (id, email or None, phone, first_name, last_name, created_at)
MemberRow = tuple[int, str | None, str, str, str, datetime]
# (member_id, channel_id, location_id or None, seen_at)
SeenRow = tuple[int, int, int | None, datetime]
# (member_id, kind, points, order_id, return_id or None, created_at)
PointsRow = tuple[int, str, int, int, int | None, datetime]


def bulk_members(rows: Sequence[MemberRow]) -> int:
    return copy_rows(
        Member,
        (
            "id",
            "email",
            "phone",
            "first_name",
            "last_name",
            "created_at",
            "updated_at",
            "email_consent",
            "email_consent_source",
            "sms_consent",
            "sms_consent_source",
            "points",
            "tier",
        ),
        ((*row, row[-1], False, "", False, "", 0, Member.Tier.BASIC) for row in rows),
    )


def bulk_seen(rows: Sequence[SeenRow]) -> int:
    return copy_rows(
        MemberChannel,
        ("member_id", "channel_id", "location_id", "first_seen", "last_seen"),
        ((*row, row[-1]) for row in rows),
    )


def bulk_points(rows: Sequence[PointsRow]) -> int:
    copy_rows(
        PointsEntry,
        ("member_id", "kind", "points", "order_id", "ret_id", "created_at", "note"),
        ((*row, "") for row in rows),
    )
    balance: dict[int, int] = {}
    for member_id, _, points, *_ in rows:
        balance[member_id] = balance.get(member_id, 0) + points
    moved = sorted(balance.items())
    table = Member._meta.db_table
    for start in range(0, len(moved), 5000):
        chunk = moved[start : start + 5000]
        values = ", ".join(["(%s, %s)"] * len(chunk))
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH moved (id, points) AS (VALUES {values}) "
                f"UPDATE {table} SET points = {table}.points + moved.points "
                f"FROM moved WHERE {table}.id = moved.id",
                [value for pair in chunk for value in pair],
            )
    return len(rows)
