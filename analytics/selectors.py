"""Read queries for the managers' numbers: sales by channel, location or day, segments,
CLV and cohorts. Sales read live orders; the rest read what the nightly run computed."""

from datetime import date
from decimal import Decimal

from django.db.models import Avg, Count, DecimalField, F, Max, Q, Sum, Value
from django.db.models.functions import Coalesce, TruncDate

from inventory.selectors import stock_out_rate_by_channel
from omnichannel.selectors import StoreLimit
from orders.models import Order, Return
from orders.selectors import orders_within_limit, returned_value

from .models import CohortRetention, MemberScore
from .served import refunded_by_currency, served_by_location, served_by_order, served_by_sku

HANDED_OVER = ["completed", "picked_up", "shipped"]
# What sales are grouped by: a field of the order, or for `location` the locations that
# served it, from its allocations (`analytics.served`).
GROUPS = {
    "channel": "channel__code",
    "location": None,
    "day": "day",
}


def _handed_over(limit: StoreLimit):
    """Orders whose goods were handed over; with a store limit, only its stores' orders
    (sold at, collected at or served from them: the orders the staff member may see)."""
    return orders_within_limit(Order.objects.filter(status__in=HANDED_OVER), limit=limit)


def _served_allocations(limit: StoreLimit):
    """The allocations of a store limit's stores (every one without a limit): which location
    served how many units of a line."""
    from orders.models import Allocation

    allocations = Allocation.objects.order_by()
    return allocations if limit is None else allocations.filter(location_id__in=limit)


def _per_currency(rows) -> list[dict]:
    """Rows of one grouping (each order in one row) added up per currency: `orders`,
    `pickups`, `revenue`."""
    totals: dict[str, dict] = {}
    for row in rows:
        into = totals.setdefault(
            row["currency"],
            {"currency": row["currency"], "orders": 0, "pickups": 0, "revenue": Decimal("0.00")},
        )
        for figure in ("orders", "pickups", "revenue"):
            into[figure] += row[figure]
    return [totals[currency] for currency in sorted(totals)]


def _served_return(limit: StoreLimit):
    """A return counts toward a store-limited staff member's return rate when their stores
    served one of the lines that came back, as its refund counts (`refunded_by_currency`):
    a return of goods another location sent counted in their rate while its refund counted
    0."""
    if limit is None:
        return None
    from django.db.models import Exists, OuterRef

    return Exists(_served_allocations(limit).filter(line__returned__ret=OuterRef("pk")))


def sales(*, start: date, end: date, by: str, limit: StoreLimit = None) -> dict:
    """Sales between two dates (inclusive) grouped by channel, location or day, with the
    pickup share and return rate of the period; with a store limit, its stores' only.

    Money is never added across currencies (an order is in its channel's currency, kept on
    the order): each row is one key's sales in one currency, and the totals are given per
    currency (`by_currency`). The totals' own `revenue` and `refunds` are that one
    currency's when the answer holds one (`currency` says which), null when it holds
    several: euros and pounds added made a figure in no currency.

    Revenue is a sum of whole cents: an order's total (the whole business's figures), or
    for a store limit and by location the cents each location was given of it once
    (`analytics.served`). So the rows add up to the totals, and a store's figure is the
    same for its manager and for head office."""
    orders = (
        _handed_over(limit)
        .filter(created_at__date__gte=start, created_at__date__lte=end)
        .annotate(day=TruncDate("created_at"))
    )
    pickups = Count("id", filter=Q(fulfillment="pickup"))
    if by == "location":
        rows = served_by_location(orders, limit=limit, currency=F("currency"))
        totals = list(
            orders.values("currency")
            .annotate(orders=Count("id"), pickups=pickups, revenue=Sum("total"))
            .order_by("currency")
        )
        if limit is not None:  # the cents of their stores' rows (an order counts at each)
            for total in totals:
                mine = (row["revenue"] for row in rows if row["currency"] == total["currency"])
                total["revenue"] = sum(mine, Decimal("0.00"))
    else:
        rows = (
            list(
                orders.values("currency", key=F(GROUPS[by]))
                .annotate(orders=Count("id"), pickups=pickups, revenue=Sum("total"))
                .order_by("key", "currency")
            )
            if limit is None
            else served_by_order(
                orders, limit=limit, group={"key": F(GROUPS[by]), "currency": F("currency")}
            )
        )
        totals = _per_currency(rows)
    # An order is in one currency: its returns' orders counted per currency add up.
    returns_of = Return.objects.filter(order__in=orders.values("pk"))
    figures = {"returns": Count("order", distinct=True, filter=_served_return(limit))}
    if limit is None:  # what the goods returned were worth, as each line recorded
        figures["refunds"] = Coalesce(Sum(returned_value()), Value(0), output_field=DecimalField())
    returned = list(returns_of.values(currency=F("order__currency")).annotate(**figures).order_by())
    returns = sum(row["returns"] for row in returned)
    if limit is None:
        refunds = {row["currency"]: row["refunds"] for row in returned}
    else:  # each returned line's refund spread over its stores in whole cents, as revenue
        refunds = refunded_by_currency(returns_of, limit=limit)
    by_currency = [
        {
            "currency": row["currency"],
            "orders": row["orders"],
            "revenue": row["revenue"],
            "refunds": refunds.get(row["currency"], Decimal("0")),
        }
        for row in totals
    ]
    count = sum(row["orders"] for row in totals)
    if len(by_currency) == 1:
        [one] = by_currency
        currency, revenue, refunded = one["currency"], one["revenue"], one["refunds"]
    elif not by_currency:
        currency, revenue, refunded = None, Decimal("0"), Decimal("0")
    else:  # several currencies: no one figure of them
        currency, revenue, refunded = None, None, None
    return {
        "from": start,
        "to": end,
        "by": by,
        "results": [
            {
                "key": str(row["key"]),
                "currency": row["currency"],
                "orders": row["orders"],
                "revenue": row["revenue"],
            }
            for row in rows
        ],
        "totals": {
            "orders": count,
            "currency": currency,
            "revenue": revenue,
            "refunds": refunded,
            "by_currency": by_currency,
            "pickup_share": (
                round(sum(row["pickups"] for row in totals) / count, 4) if count else 0.0
            ),
            "return_rate": round(returns / count, 4) if count else 0.0,
            "stock_out_rate": stock_out_rate_by_channel(),
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


def daily_revenue_by_channel(
    *, days: int = 90, today: date | None = None, limit: StoreLimit = None
) -> dict:
    """{"days": [...], "channels": {series: [revenue per day]}, "currencies": {series:
    currency}} for the last `days` days. A series is a channel's sales in one currency (the
    orders'), named by the channel's code, and by code and currency for a channel whose
    orders of those days are in several (its currency was changed): a day's euros and
    pounds were one point."""
    from datetime import timedelta

    end = today or date.today()
    start = end - timedelta(days=days - 1)
    orders = (
        _handed_over(limit)
        .filter(created_at__date__gte=start, created_at__date__lte=end)
        .annotate(day=TruncDate("created_at"))
    )
    if limit is None:
        rows = list(
            orders.values("day", "currency", code=F("channel__code"))
            .annotate(revenue=Sum("total"))
            .order_by("code", "currency")
        )
    else:  # what their stores served, in the cents the sales figures count
        group = {"code": F("channel__code"), "currency": F("currency"), "day": F("day")}
        rows = served_by_order(orders, limit=limit, group=group)
        for row in rows:  # a date on PostgreSQL, its ISO text on SQLite
            row["day"] = date.fromisoformat(str(row["day"])[:10])
    axis = [start + timedelta(days=n) for n in range(days)]
    index = {day: n for n, day in enumerate(axis)}
    spoken: dict[str, set[str]] = {}
    for row in rows:
        spoken.setdefault(row["code"], set()).add(row["currency"])
    channels: dict[str, list[float]] = {}
    currencies: dict[str, str] = {}
    for row in rows:
        code, currency = row["code"], row["currency"]
        name = code if len(spoken[code]) == 1 else f"{code} {currency}"
        currencies[name] = currency
        series = channels.setdefault(name, [0.0] * days)
        series[index[row["day"]]] = float(row["revenue"])
    return {
        "days": [day.isoformat() for day in axis],
        "channels": channels,
        "currencies": currencies,
    }


def top_products(
    *,
    days: int = 90,
    limit: int = 10,
    today: date | None = None,
    store_limit: StoreLimit = None,
) -> list[dict]:
    """The best-selling SKUs of the sales chart's days, by what was paid for them: one row
    per SKU and currency (what it sold for in euros and in pounds is not one figure),
    named as its variant sells today. Lines keep the name they were sold under, and grouped
    by it a renamed product was two rows, each ranked on part of its sales. Two queries."""
    from datetime import timedelta

    from catalog.models import Variant
    from orders.models import OrderLine

    since = (today or date.today()) - timedelta(days=days - 1)  # the sales chart's days
    orders = _handed_over(store_limit).filter(created_at__date__gte=since)
    if store_limit is not None:  # the units their stores served, in the sales' cents
        rows = served_by_sku(orders, limit=store_limit, currency=F("currency"), top=limit)
    else:
        rows = list(
            OrderLine.objects.filter(order__in=orders.values("pk"))
            .values("sku", currency=F("order__currency"))
            # What was paid for them, the line's share of the order discount off, as sales
            # count.
            .annotate(
                revenue=Sum(F("line_total") - F("discount")),
                units=Sum("quantity"),
                variant=Max("variant_id"),
            )
            .order_by("-revenue", "sku", "currency")[:limit]
        )
    # The variant sold under the SKU (the latest, should the SKU have passed to another),
    # named as an order line names it (orders.services).
    variants = Variant.objects.select_related("product").in_bulk([r["variant"] for r in rows])
    for row in rows:
        variant = variants[row.pop("variant")]
        row["name"] = f"{variant.product.name} {variant.name}".strip()
    return rows


def clv_histogram(*, bins: int = 10) -> dict:
    """Members per CLV band, for a distribution chart: counted by the database, band by band
    (the web process read every member's score to count them)."""
    from django.db.models import FloatField
    from django.db.models.functions import Cast, Floor, Greatest, Least

    scores = MemberScore.objects.exclude(clv_12m=None)
    top = scores.aggregate(top=Max("clv_12m"))["top"]
    if top is None:
        return {"labels": [], "counts": []}
    width = (float(top) or 1.0) / bins
    band = Greatest(
        Least(
            Floor(Cast("clv_12m", FloatField()) / Value(width)),
            Value(float(bins - 1)),
            output_field=FloatField(),
        ),
        Value(0.0),
        output_field=FloatField(),
    )
    counts = [0] * bins
    for row in scores.order_by().annotate(band=band).values("band").annotate(n=Count("pk")):
        counts[int(row["band"])] += row["n"]
    labels = [f"{i * width:.0f}-{(i + 1) * width:.0f}" for i in range(bins)]
    return {"labels": labels, "counts": counts}
