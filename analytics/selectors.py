"""Read queries for the managers' numbers: sales by channel, location or day, segments,
CLV and cohorts. Sales read live orders; the rest read what the nightly run computed."""

from datetime import date

from django.db.models import Avg, Count, DecimalField, F, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from orders.models import Order, Return

from .models import CohortRetention, MemberScore

HANDED_OVER = ["completed", "picked_up", "shipped"]
GROUPS = {
    "channel": "channel__code",
    "location": "where",
    "day": "day",
}


def sales(*, start: date, end: date, by: str) -> dict:
    """Sales between two dates (inclusive) grouped by channel, location or day, with the
    pickup share and return rate of the period."""
    orders = Order.objects.filter(
        status__in=HANDED_OVER, created_at__date__gte=start, created_at__date__lte=end
    ).annotate(
        day=TruncDate("created_at"),
        where=Coalesce("location__code", "pickup_location__code", Value("web")),
    )
    rows = (
        orders.values(key=F(GROUPS[by]))
        .annotate(orders=Count("id"), revenue=Sum("total"))
        .order_by("key")
    )
    totals = orders.aggregate(
        orders=Count("id"),
        revenue=Coalesce(Sum("total"), Value(0), output_field=DecimalField()),
        pickups=Count("id", filter=Q(fulfillment="pickup")),
    )
    refunded = Return.objects.filter(order__in=orders.values("pk")).aggregate(
        refunds=Coalesce(Sum("refund"), Value(0), output_field=DecimalField()),
        returns=Count("order", distinct=True),
    )
    count = totals["orders"] or 0
    return {
        "from": start,
        "to": end,
        "by": by,
        "results": [
            {"key": str(row["key"]), "orders": row["orders"], "revenue": row["revenue"]}
            for row in rows
        ],
        "totals": {
            "orders": count,
            "revenue": totals["revenue"],
            "pickup_share": round(totals["pickups"] / count, 4) if count else 0.0,
            "return_rate": round(refunded["returns"] / count, 4) if count else 0.0,
            "refunds": refunded["refunds"],
        },
    }


def segments() -> list[dict]:
    return list(
        MemberScore.objects.values("segment")
        .annotate(members=Count("member"), monetary=Avg("monetary"), clv=Avg("clv_12m"))
        .order_by("segment")
    )


def member_scores(*, segment: str | None):
    qs = MemberScore.objects.order_by(F("clv_12m").desc(nulls_last=True), "member_id")
    return qs.filter(segment=segment) if segment else qs


def retention():
    return CohortRetention.objects.order_by("cohort", "first_channel", "months_since")
