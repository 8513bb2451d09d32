"""Read queries on orders, confined to what the caller may see."""

from django.db.models import F, Prefetch, Q, QuerySet

from omnichannel.compiled import CompiledQuery
from omnichannel.models import ApiClient
from omnichannel.selectors import StoreLimit

from .models import Allocation, Order, OrderLine, Payment


def _with_details(qs: QuerySet[Order]) -> QuerySet[Order]:
    lines = OrderLine.objects.prefetch_related(
        Prefetch("allocations", queryset=Allocation.objects.select_related("location"))
    )
    return qs.select_related("channel", "location", "pickup_location").prefetch_related(
        Prefetch("lines", queryset=lines), "payments"
    )


def orders_within_limit(qs: QuerySet[Order], *, limit: StoreLimit) -> QuerySet[Order]:
    """The orders a store-limited staff member sees: sold at, collected at or served from
    (allocated at) one of their stores. A subquery, not a join: no row counted twice."""
    if limit is None:
        return qs
    served = Allocation.objects.filter(location_id__in=limit).values("line__order_id")
    return qs.filter(Q(location_id__in=limit) | Q(pickup_location_id__in=limit) | Q(pk__in=served))


def returned_value() -> F:
    """On a Return, to be summed over returns: what its goods were worth, as each of its
    lines recorded when they came back (paid for them, discounts included), on the basis
    revenue counts (the order's total, whatever paid it: money or points). It joins the
    lines: count returns distinctly beside it. Money given back plus points at today's
    POINT_VALUE re-valued every past return whenever a point was repriced."""
    return F("lines__refund")


def order_location_ids(order: Order) -> set[int]:
    """Every location an order touches: its store, its pickup store, where it is allocated
    (read from the prefetched allocations of `_with_details`)."""
    ids = {order.location_id, order.pickup_location_id}
    ids.update(a.location_id for line in order.lines.all() for a in line.allocations.all())
    ids.discard(None)
    return ids


def order_changeable(order: Order, *, limit: StoreLimit) -> bool:
    """A store-limited staff member moves an order on (cancel, pickup, ship: stock is
    released or leaves) only when every location it touches is one of their stores."""
    return limit is None or order_location_ids(order) <= limit


def order_list(*, client: ApiClient | None, limit: StoreLimit = None) -> QuerySet[Order]:
    """A client sees its channel's orders, and a POS also the pickups at its store, whichever
    channel took them. Staff see every order, or with a store limit those of their stores."""
    qs = Order.objects.all()
    if client is not None:
        visible = Q(channel_id=client.channel_id)
        if client.is_till:
            visible |= Q(pickup_location_id=client.till_location_id)
        qs = qs.filter(visible)
    return orders_within_limit(qs, limit=limit).order_by("-id")


# What an order's answer shows, read as plain values for a page of orders (orders.api
# builds the answer from them): model instances and prefetch managers for 50 orders, their
# lines and allocations cost most of the page (profiled on the large demo).
ORDER_VALUES = (
    "id",
    "number",
    "status",
    "channel__code",
    "fulfillment",
    "location__code",
    "pickup_location__code",
    "currency",
    "subtotal",
    "discount",
    "total",
    "member_id",
    "points_earned",
    "needs_review",
    "created_at",
)

LINE_VALUES = ("sku", "name", "quantity", "unit_price", "line_total", "discount")

# A page's lines with their allocations in one statement (a line with none still comes,
# once, with NULLs): a row per allocation, in line then allocation order. Compiled once per
# page length (omnichannel.compiled), as are the payments.
_PAGE_LINES = CompiledQuery(
    lambda order_ids: (
        OrderLine.objects.filter(order_id__in=order_ids)
        .order_by("id", "allocations__id")
        .values_list(
            "id", "order_id", *LINE_VALUES, "allocations__location__code", "allocations__quantity"
        )
    )
)
_PAGE_PAYMENTS = CompiledQuery(
    lambda order_ids: (
        Payment.objects.filter(order_id__in=order_ids)
        .order_by("id")
        .values_list("order_id", "method", "amount")
    )
)


def order_page_details(orders: list[dict]) -> list[dict]:
    """Give each order row (`.values(*ORDER_VALUES)`) its `lines` (each with its
    `allocations`) and `payments`, in the order a single order's answer lists them."""
    by_id = {row["id"]: row for row in orders}
    for row in orders:
        row["lines"], row["payments"] = [], []
    ids = list(by_id)
    lines = {}
    for line_id, order_id, *fields, at, allocated in _PAGE_LINES.rows(ids):
        line = lines.get(line_id)
        if line is None:
            line = lines[line_id] = dict(zip(LINE_VALUES, fields, strict=True), allocations=[])
            by_id[order_id]["lines"].append(line)
        if at is not None:
            line["allocations"].append({"location__code": at, "quantity": allocated})
    for order_id, method, amount in _PAGE_PAYMENTS.rows(ids):
        by_id[order_id]["payments"].append({"method": method, "amount": amount})
    return orders


def _by_id_or_number(qs: QuerySet[Order], key: str) -> QuerySet[Order]:
    """An order key is its id (ASCII digits: "²" passes str.isdigit but not int) or else
    its number. An id past the column's range simply matches nothing."""
    if key.isascii() and key.isdigit():
        return qs.filter(pk=int(key))
    return qs.filter(number=key)


def order_lookup(*, key: str, limit: StoreLimit = None) -> Order | None:
    """An order by id or by number, for any channel: a return can happen at any store. A
    store-limited staff member finds only the orders of their stores."""
    qs = _with_details(orders_within_limit(Order.objects.all(), limit=limit))
    return _by_id_or_number(qs, key).first()


def order_id_lookup(*, key: str) -> int | None:
    """The id of the order with this id or number, for any channel (returns happen at any
    store), without loading it."""
    return _by_id_or_number(Order.objects.all(), key).values_list("pk", flat=True).first()
