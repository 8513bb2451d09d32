"""Order rules: placing an order from any channel, moving it through its states, returns.

Placing prices every line from the channel's price list and allocates all lines or none,
through inventory.services, in one transaction:
- in_store: the POS's store sells at once (an offline sale may take stock below zero);
- pickup:   reserved at the pickup store;
- ship:     reserved where routing says (orders.routing), keeping each location's safety
            stock for this channel.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone
from rest_framework import status

from catalog.selectors import prices_as_of, prices_sold_at, selling_prices, variant_ids_by_sku
from customers.models import Member
from customers.services import (
    Contact,
    UnknownMember,
    member_lock,
    member_seen,
    member_survivor_lock,
    member_upsert,
    points_earn,
    points_redeem,
    points_refund_due,
    points_restore,
    points_reverse,
    points_value,
)
from inventory.services import (
    SYSTEM,
    Actor,
    InsufficientStock,
    StockLine,
    stock_commit,
    stock_receive,
    stock_release,
    stock_reserve,
    stock_reserve_routed,
    stock_sell_now,
)
from omnichannel.bulk import next_ids
from omnichannel.compiled import bulk_insert
from omnichannel.errors import DomainError
from omnichannel.models import Channel, ChannelLocation, Location

from . import routing
from .models import Allocation, Order, OrderLine, Payment, Return, ReturnLine
from .pricing import ZERO, money, refund_for, spread

Status = Order.Status
Fulfillment = Order.Fulfillment


class NotSoldInChannel(DomainError):
    code = "not_sold_in_channel"
    default_detail = (
        "The channel does not sell this SKU: no published price there, or it is discontinued."
    )


class LocationRequired(DomainError):
    code = "location_required"
    default_detail = "This fulfillment needs a location."


class InvalidPickupLocation(DomainError):
    code = "invalid_pickup_location"
    default_detail = "Customers cannot collect orders at that location."


class PaymentMismatch(DomainError):
    code = "payment_mismatch"
    default_detail = "The payments do not add up to the order total."


class PointsAsPayment(DomainError):
    """A payment named "points" took no points from anyone, yet counted as paid with them
    (no points earned on it, none given back on a return): points pay through
    `redeem_points`, which takes them from the member's balance."""

    code = "invalid"
    field = "payments"
    default_detail = 'Pay with points through `redeem_points`, not a payment of method "points".'


class AmountTooLarge(DomainError):
    code = "amount_too_large"
    default_detail = "The order's amounts are larger than the books can record."


# The largest amount a line or order total holds (DecimalField(max_digits=12, places=2)).
MAX_AMOUNT = Decimal("9999999999.99")


class InvalidDiscount(DomainError):
    code = "invalid_discount"
    default_detail = "The discount must be between zero and the subtotal."


class InvalidTransition(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "invalid_transition"
    default_detail = "The order is not in a state that allows this."


class ReturnExceedsSold(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "return_exceeds_sold"
    default_detail = "Cannot return more than was sold and not yet returned."


class NotReturnable(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "not_returnable"
    default_detail = "Only goods handed to the customer can come back."


@dataclass(frozen=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True)
class PaymentRequest:
    method: str
    amount: Decimal


def order_member(
    *, ref: dict, channel: Channel, location: Location | None, already_sold: bool = False
) -> Member | None:
    """The member an order names (orders.api.serializers.MemberRefField): `{"id": n}`
    looked up (unknown: 400 unknown_member), or `{"contact": {...}}` found or made, seen in
    `channel` at `location`. For an order placed now and for an offline sale alike, but
    for a sale `already_sold` (the goods left with the customer) the id of a member merged
    or erased since still stands: the sale is booked to the member they were merged into,
    or to no one (None). Locked then, in the caller's transaction, so that a merge running
    meanwhile waits for the sale (and moves it) or is followed."""
    if "id" in ref and already_sold:
        return member_survivor_lock(member_id=ref["id"])
    if "id" in ref:
        member = Member.objects.filter(pk=ref["id"]).first()
        if member is None:
            raise UnknownMember(member=ref["id"])
        return member
    member, _ = member_upsert(contact=Contact(**ref["contact"]), channel=channel, location=location)
    return member


def _priced_lines(
    channel: Channel,
    lines: list[LineRequest],
    *,
    already_sold: bool = False,
    sold_at: datetime | None = None,
) -> list[dict]:
    """Merge lines of the same SKU and price them from the channel's published prices. A
    sale `already_sold` (offline, synced later) stands for a SKU discontinued since, and is
    priced as it was rung up at `sold_at`: a price changed since would have refused its
    payments (payment_mismatch), and the sale, whose goods had left, was lost. So for a
    price unpublished or deleted since: it is taken from the history as of `sold_at`, and
    only a SKU with no published price then either is not sold here."""
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    # One query on the way that sells: the prices, found by SKU. Only when a SKU has no
    # published price here (or is discontinued) is it looked up again, to tell an unknown
    # SKU from one this channel does not sell.
    prices = selling_prices(channel_id=channel.pk, skus=list(merged), discontinued_too=already_sold)
    if already_sold and sold_at is not None and prices:
        then = prices_as_of(
            channel_id=channel.pk, variant_ids=[p[0] for p in prices.values()], when=sold_at
        )
        prices = {sku: (*p[:3], then.get(p[0], p[3])) for sku, p in prices.items()}
    if already_sold and sold_at is not None and len(prices) < len(merged):
        # One query more, only for a sale with such a SKU: its price as it stood then.
        unpriced = [sku for sku in merged if sku not in prices]
        prices |= prices_sold_at(channel_id=channel.pk, skus=unpriced, when=sold_at)
    if len(prices) < len(merged):
        variant_ids_by_sku(skus=list(merged))  # 400 unknown_sku for the first unknown one
    priced = []
    for sku, quantity in merged.items():
        price = prices.get(sku)
        if price is None:
            raise NotSoldInChannel(sku=sku, channel=channel.code)
        variant_id, variant_name, product_name, amount = price
        priced.append(
            {
                "variant_id": variant_id,
                "sku": sku,
                "name": f"{product_name} {variant_name}".strip()[:300],
                "unit_price": amount,
                "quantity": quantity,
                "line_total": money(amount * quantity),
            }
        )
    return priced


def _keep_for(channel: Channel, location_id: int, variant_ids) -> dict:
    safety = (
        ChannelLocation.objects.filter(channel=channel, location_id=location_id)
        .values_list("safety_stock", flat=True)
        .first()
        or 0
    )
    return {(v, location_id): safety for v in variant_ids}


def _allocate_ship(
    channel: Channel,
    wanted: dict[int, int],
    skus: dict[int, str],
    location: Location | None,
    reference: str,
    actor: Actor,
) -> tuple[list[tuple[int, int, int]], list[Location]]:
    """The allocation, and the candidate locations (loaded with the feeds) it may name.

    Routing decides from stock locked for this order, so it is reserved as planned."""
    candidates = routing.ship_candidates(
        channel_id=channel.pk, location_id=location.pk if location else None
    )
    if location is not None and not candidates:
        raise LocationRequired(
            "That location does not ship for this channel.", location=location.code
        )

    def route(sellable: dict[tuple[int, int], int]) -> list[StockLine]:
        plan = routing.plan(wanted=wanted, candidates=candidates, sellable=sellable)
        return [StockLine(v, loc, q) for v, loc, q in plan]

    try:
        reserved = stock_reserve_routed(
            variant_ids=wanted,
            keep={c.location_id: c.safety_stock for c in candidates},
            route=route,
            reference=reference,
            actor=actor,
        )
    except routing.Shortfall as short:
        # The transaction is spoilt now (no savepoint): the message uses what is known.
        raise InsufficientStock(
            f"Only {short.available} of {skus[short.variant_id]} can ship in this channel.",
            sku=skus[short.variant_id],
            location=location.code if location else None,
            available=short.available,
        ) from short
    allocation = [(line.variant_id, line.location_id, line.quantity) for line in reserved]
    return allocation, [c.location for c in candidates if c.location is not None]


@transaction.atomic
def order_place(
    *,
    channel: Channel,
    fulfillment: str,
    lines: list[LineRequest],
    location: Location | None = None,
    pickup_location: Location | None = None,
    payments: list[PaymentRequest] | tuple = (),
    discount: Decimal = ZERO,
    allow_oversell: bool = False,
    sold_at: datetime | None = None,
    client_id: str = "",
    member: Member | None = None,
    member_ref: dict | None = None,
    redeem_points: int = 0,
    actor: Actor = SYSTEM,
) -> Order:
    """Place an order: every line priced and allocated, or nothing written at all.

    `member_ref` (instead of `member`) names the member as the API takes it, found or made
    here (`order_member`) in the order's transaction: a shopper made a member for an order
    that is then refused (no stock, a wrong payment) is not kept.
    `redeem_points` pays part of the total with the member's points (a payment, not a
    discount). An in-store sale earns points at once; pickups and parcels when handed over."""
    # Where the member is seen: where the order happens. A pickup's `location` is not its
    # own (the order keeps none); taking it recorded the member at a store never visited.
    seen_at = pickup_location if fulfillment == Fulfillment.PICKUP else location
    if member_ref is not None:
        member = order_member(ref=member_ref, channel=channel, location=seen_at)
    priced = _priced_lines(channel, lines, already_sold=allow_oversell, sold_at=sold_at)
    subtotal = sum((line["line_total"] for line in priced), ZERO)
    if subtotal > MAX_AMOUNT:  # each line is at most the subtotal
        raise AmountTooLarge(subtotal=str(subtotal), max=str(MAX_AMOUNT))
    discount = money(discount)
    if not ZERO <= discount <= subtotal:
        raise InvalidDiscount(discount=str(discount), subtotal=str(subtotal))
    total = subtotal - discount
    if redeem_points and member is None:
        raise PaymentMismatch("Points need a member on the order.")
    if any(p.method.strip().lower() == "points" for p in payments):
        raise PointsAsPayment()
    by_points = points_value(redeem_points) if redeem_points else ZERO
    if by_points > total:
        raise PaymentMismatch("The points are worth more than the order.", total=str(total))
    if payments and money(sum((p.amount for p in payments), ZERO)) + by_points != total:
        raise PaymentMismatch(total=str(total))
    shares = spread(discount, [line["line_total"] for line in priced])

    if fulfillment == Fulfillment.IN_STORE and location is None:
        raise LocationRequired("An in-store sale happens at a store: give `location`.")
    if fulfillment == Fulfillment.PICKUP:
        if pickup_location is None:
            raise LocationRequired("A pickup order needs `pickup_location`.")
        if not pickup_location.pickup:
            raise InvalidPickupLocation(location=pickup_location.code)

    if member is not None:  # before any stock row (customers.services.member_lock)
        member = member_lock(member_id=member.pk)

    # The number is the id's: the id is taken first, so the row is written once, number
    # included. Written without it and updated after, every order was a second row version
    # and a second entry in each of the table's indexes (the number is in one, so the update
    # cannot stay on its page), and a statement more to build.
    # Its rows are written with the INSERTs the ORM wrote for the first order of this shape
    # (omnichannel.compiled.bulk_insert): building them again cost a sixth of an order's CPU.
    [order_id] = next_ids(Order, 1)
    [order] = bulk_insert(
        [
            Order(
                id=order_id,
                number=Order.number_for(channel_code=channel.code, order_id=order_id),
                channel=channel,
                fulfillment=fulfillment,
                status=Status.COMPLETED if fulfillment == Fulfillment.IN_STORE else Status.PLACED,
                location=location if fulfillment == Fulfillment.IN_STORE else None,
                pickup_location=pickup_location if fulfillment == Fulfillment.PICKUP else None,
                currency=channel.currency,
                subtotal=subtotal,
                discount=discount,
                total=total,
                client_id=client_id,
                member=member,
                api_client_id=actor.api_client_id,
                created_by_id=actor.user_id,
            )
        ]
    )
    wanted = {line["variant_id"]: line["quantity"] for line in priced}

    if fulfillment == Fulfillment.IN_STORE:
        _, oversold = stock_sell_now(
            lines=[StockLine(v, location.pk, q) for v, q in wanted.items()],
            reference=order.reference,
            allow_oversell=allow_oversell,
            actor=actor,
        )
        allocation = [(v, location.pk, q) for v, q in wanted.items()]
        shippers = []
        order.needs_review = bool(oversold)
    elif fulfillment == Fulfillment.PICKUP:
        stock_reserve(
            lines=[StockLine(v, pickup_location.pk, q) for v, q in wanted.items()],
            reference=order.reference,
            keep=_keep_for(channel, pickup_location.pk, wanted),
            actor=actor,
        )
        allocation = [(v, pickup_location.pk, q) for v, q in wanted.items()]
        shippers = []
    else:
        skus = {line["variant_id"]: line["sku"] for line in priced}
        allocation, shippers = _allocate_ship(
            channel, wanted, skus, location, order.reference, actor
        )
    if order.needs_review:  # an in-store sale that sold more than the system had
        Order.objects.filter(pk=order.pk).update(needs_review=True)

    created = bulk_insert(
        [
            OrderLine(
                order=order,
                variant_id=line["variant_id"],
                sku=line["sku"],
                name=line["name"],
                unit_price=line["unit_price"],
                quantity=line["quantity"],
                line_total=line["line_total"],
                discount=share,
            )
            for line, share in zip(priced, shares, strict=True)
        ]
    )
    line_for = {line.variant_id: line for line in created}
    allocations = bulk_insert(
        [Allocation(line=line_for[v], location_id=loc, quantity=q) for v, loc, q in allocation]
    )
    paid = bulk_insert(  # a 0.00 line (an offline sale's) paid nothing
        [
            Payment(order=order, method=p.method, amount=money(p.amount))
            for p in payments
            if p.amount
        ]
    )
    if member is not None:
        member_seen(member=member, channel=channel, location=seen_at)
        if redeem_points:
            value = points_redeem(member_id=member.pk, points=redeem_points, order=order)
            paid.append(Payment.objects.create(order=order, method="points", amount=value))
    _keep_written(order, created, allocations, paid, known=(location, pickup_location, *shippers))
    if member is not None and order.status == Status.COMPLETED:
        order.points_earned = points_earn(order=order)
    return order


def _keep_written(order, lines, allocations, payments, known) -> None:
    """Hand back the order with what was just written attached, as a prefetch would have
    loaded it (`selectors.order_lookup`), so the answer needs no second read of the rows
    this transaction wrote. The API test compares that answer with a fresh GET."""
    locations = {loc.pk: loc for loc in known if loc is not None}
    missing = {a.location_id for a in allocations} - set(locations)
    if missing:
        locations.update(Location.objects.in_bulk(missing))
    by_line: dict[int, list[Allocation]] = {line.pk: [] for line in lines}
    for allocation in allocations:
        allocation.location = locations[allocation.location_id]
        by_line[allocation.line_id].append(allocation)
    for line in lines:
        line._prefetched_objects_cache = {
            "allocations": _as_prefetched(line.allocations, by_line[line.pk])
        }
    order._prefetched_objects_cache = {
        "lines": _as_prefetched(order.lines, lines),
        "payments": _as_prefetched(order.payments, payments),
    }


def _as_prefetched(manager, rows):
    """What `prefetch_related` leaves behind: the related manager's queryset, filled."""
    qs = manager.all()
    qs._result_cache = list(rows)
    qs._prefetch_done = True
    return qs


# --- transitions ------------------------------------------------------------------------

TRANSITIONS = {
    # action: (fulfillments it applies to, statuses it leaves from, status it reaches)
    "cancel": (
        {Fulfillment.PICKUP, Fulfillment.SHIP},
        {Status.PLACED, Status.READY_FOR_PICKUP},
        Status.CANCELLED,
    ),
    "ready_for_pickup": ({Fulfillment.PICKUP}, {Status.PLACED}, Status.READY_FOR_PICKUP),
    "picked_up": (
        {Fulfillment.PICKUP},
        {Status.PLACED, Status.READY_FOR_PICKUP},
        Status.PICKED_UP,
    ),
    "ship": ({Fulfillment.SHIP}, {Status.PLACED}, Status.SHIPPED),
    "expire": (
        {Fulfillment.PICKUP},
        {Status.PLACED, Status.READY_FOR_PICKUP},
        Status.EXPIRED,
    ),
}


def _allocated_lines(order: Order) -> list[StockLine]:
    return [
        StockLine(a.line.variant_id, a.location_id, a.quantity)
        for a in Allocation.objects.filter(line__order=order).select_related("line")
    ]


@transaction.atomic
def order_transition(*, order_id: int, action: str, actor: Actor = SYSTEM) -> Order:
    """Move an order on; 409 `invalid_transition` when its state does not allow it."""
    order = Order.objects.select_for_update().get(pk=order_id)
    fulfillments, sources, target = TRANSITIONS[action]
    if order.fulfillment not in fulfillments or order.status not in sources:
        raise InvalidTransition(
            f"Cannot {action.replace('_', ' ')} a {order.fulfillment} order that is "
            f"{order.status}.",
            status=order.status,
            action=action,
        )
    if order.member_id is not None and target != Status.READY_FOR_PICKUP:
        member_lock(member_id=order.member_id)  # points move below: before stock
    if target in (Status.CANCELLED, Status.EXPIRED):
        stock_release(lines=_allocated_lines(order), reference=order.reference, actor=actor)
        points_restore(order=order)  # the points paid on it come back
    elif target in (Status.PICKED_UP, Status.SHIPPED):
        stock_commit(lines=_allocated_lines(order), reference=order.reference, actor=actor)
    order.status = target
    order.save(update_fields=["status", "updated_at"])
    if target in (Status.PICKED_UP, Status.SHIPPED):
        order.points_earned = points_earn(order=order)
    return order


def orders_expire_pickups(*, now=None) -> int:
    """Release the stock of pickups nobody collected within PICKUP_EXPIRY_DAYS. Each order
    expires in its own transaction; safe to run twice."""
    cutoff = (now or timezone.now()) - timedelta(days=settings.PICKUP_EXPIRY_DAYS)
    due = Order.objects.filter(
        fulfillment=Fulfillment.PICKUP,
        status__in=[Status.PLACED, Status.READY_FOR_PICKUP],
        created_at__lt=cutoff,
    ).values_list("pk", flat=True)
    expired = 0
    for order_id in list(due):
        try:
            order_transition(order_id=order_id, action="expire")
            expired += 1
        except InvalidTransition:  # collected or cancelled meanwhile
            continue
    return expired


# --- returns ---------------------------------------------------------------------------

HANDED_OVER = {Status.COMPLETED, Status.PICKED_UP, Status.SHIPPED}


@transaction.atomic
def order_return(
    *,
    order_id: int,
    location: Location,
    lines: list[LineRequest],
    restock: bool,
    actor: Actor = SYSTEM,
) -> Return:
    """Goods come back at any store. They are worth what was paid for them, discounts
    included; that comes back in points (their share, when the order was paid partly with
    points) and the rest in money, so that money and points given back are worth the goods.
    Stock comes back at that store when `restock`."""
    order = Order.objects.select_for_update().get(pk=order_id)
    if order.status not in HANDED_OVER:
        raise NotReturnable(status=order.status)
    if order.member_id is not None:
        member_lock(member_id=order.member_id)  # points move below: before stock
    order_lines = {line.sku: line for line in order.lines.all()}
    returned = {
        row["line_id"]: (row["quantity"], row["refund"])
        for row in ReturnLine.objects.filter(line__order=order)
        .values("line_id")
        .annotate(quantity=Sum("quantity"), refund=Sum("refund"))
    }
    merged: dict[str, int] = {}
    for line in lines:
        merged[line.sku] = merged.get(line.sku, 0) + line.quantity
    off_order = [sku for sku in merged if sku not in order_lines]
    if off_order:  # 400 unknown_sku for one no variant has, as placing an order answers
        variant_ids_by_sku(skus=off_order)
    plan = []
    for sku, quantity in merged.items():
        line = order_lines.get(sku)
        if line is None:
            raise ReturnExceedsSold(f"{sku} is not on this order.", sku=sku, returnable=0)
        before_qty, before_refund = returned.get(line.pk, (0, ZERO))
        if quantity > line.quantity - before_qty:
            raise ReturnExceedsSold(sku=sku, returnable=line.quantity - before_qty)
        refund = refund_for(
            paid=line.paid,
            sold=line.quantity,
            returning=quantity,
            returned_before=before_qty,
            refunded_before=before_refund,
        )
        plan.append((line, quantity, refund))
    # Cumulatively, over the order's returns so far: the goods that came back, as a share of
    # the order (the lines' refunds reach its total exactly when everything is back), give
    # back that share of the points spent, rounded down; the money is the rest of the goods'
    # worth, the points counted at what they paid (their part of the points payment, not
    # today's POINT_VALUE), and never more than was paid in money. Split and rounded
    # separately, money and points came to a cent or more under the goods' worth. The last
    # return gives back the rest of both, so returns in parts add up to what was paid.
    goods_value = sum((refund for _, _, refund in plan), ZERO)
    goods_so_far = goods_value + sum((refund for _, refund in returned.values()), ZERO)
    share = min(Decimal(1), goods_so_far / order.total) if order.total else Decimal(1)
    points = points_refund_due(order=order, share=share)
    by_points = order.paid_with_points()
    money_paid = order.total - by_points
    points_worth = money(by_points * points.so_far / points.spent) if points.spent else ZERO
    money_so_far = min(money_paid, goods_so_far - points_worth)
    money_before = order.returns.aggregate(total=Sum("refund"))["total"] or ZERO
    ret = Return.objects.create(
        order=order,
        location=location,
        restock=restock,
        # Never negative: when a point coming back is worth more than the goods that brought
        # it back, this return gives no money and the next ones give that much less.
        refund=max(ZERO, money_so_far - money_before),
        points_refunded=points.now,
        api_client_id=actor.api_client_id,
        created_by_id=actor.user_id,
    )
    ReturnLine.objects.bulk_create(
        [ReturnLine(ret=ret, line=line, quantity=q, refund=refund) for line, q, refund in plan]
    )
    if restock:
        stock_receive(
            lines=[StockLine(line.variant_id, location.pk, q) for line, q, _ in plan],
            reference=f"return:{ret.pk}",
            reason="return",
            actor=actor,
        )
    ret.points_reversed = points_reverse(ret=ret)
    return ret


def orders_mark_reviewed(*, order_ids: list[int]) -> int:
    """Staff checked the shelf after an oversold offline sale: clear the flag."""
    return Order.objects.filter(pk__in=order_ids, needs_review=True).update(needs_review=False)
