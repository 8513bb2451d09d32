"""A year of history at benchmark scale: about a million orders and a hundred thousand
members for `seed_demo --size large`, written in bulk.

Through the services (`orders.demo`) a million orders would take hours, so this module writes
the rows those services would have written, batch by batch, each batch in one transaction:
members (created at their first order) and where they were seen, orders with their lines,
allocations and payments, returns, the stock ledger and the points ledger. What stays true,
as with the services:

- Every stock change has its ledger row and each level moves by exactly the sum of its new
  rows: a batch's goods arrive by a delivery (`receipt`) just before they are sold, web
  orders reserve then leave (`reservation`, then `sale` or `release`), store sales leave at
  once, restocked returns come back (`return`).
- Order totals are the sum of their lines, payments the total, allocations the line
  quantities; points are earned once per handed-over order and reversed on its return.

Shoppers follow the processes the CLV models assume: each arrives on some day of the year,
buys at their own Poisson rate, may drop out after each purchase (beta-distributed), and
keeps their own usual basket size (their budget band). Members' purchases make about half
the orders (at most 70%); the rest are anonymous sales.

Orders are keyed `bulk-<n>` in time order and batches commit whole, so a second run, or one
after an interruption, continues where the last one stopped and adds nothing once done.
"""

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal

import numpy as np
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from catalog.demo import demo_variant_ids
from catalog.models import ChannelPrice
from customers.demo import bulk_members, bulk_points, bulk_seen
from customers.models import Member, MemberChannel
from inventory.demo import bulk_ledger
from omnichannel.bulk import copy_rows, next_ids, refresh_planner_statistics
from omnichannel.demo import demo_locations
from omnichannel.models import Channel, ChannelLocation

from .demo import FIRST, LAST
from .models import Allocation, Order, OrderLine, Payment, Return, ReturnLine

PHONE_PREFIX = "+3362"  # bulk shoppers' phones (the service-made demo uses +3361)
KEY_PREFIX = "bulk-"
BATCH = 20_000
# Per size: (orders, shoppers) written in bulk, on top of the orders placed through services.
SIZES = {"small": (0, 0), "large": (1_000_000, 100_000)}
CENT = Decimal("0.01")


@dataclass
class Plan:
    """Who buys when: order n (in time order) happens on `days[n]` (days after the start)
    and belongs to shopper `person[n]` (-1: an anonymous sale)."""

    days: np.ndarray
    person: np.ndarray
    first_name: np.ndarray
    last_name: np.ndarray
    has_email: np.ndarray
    budget: np.ndarray
    web_share: np.ndarray
    home_store: np.ndarray


def make_plan(*, orders: int, people: int, seed: str, stores: int) -> Plan:
    """The whole year's timeline, drawn at once from `seed` so that a later run finds the
    same plan and can resume it."""
    rng = np.random.default_rng(list(seed.encode()))
    year = 365.0
    # A third were already customers when the year began; the rest arrive through it.
    arrival = np.where(rng.random(people) < 0.35, 0.0, rng.uniform(0, year, people))
    # Purchases per day: gamma across shoppers (mean ~12 a year); drop-out after a purchase
    # with a beta-distributed probability (mean 0.11).
    rate = rng.gamma(shape=1.2, scale=12.0 / 1.2 / year, size=people)
    dropout = rng.beta(1.0, 8.0, size=people)
    days, who = [], []
    for i in range(people):
        t = arrival[i]
        while t < year:
            days.append(t)
            who.append(i)
            if rng.random() < dropout[i]:
                break
            t += rng.exponential(1.0 / rate[i])
    days = np.array(days)
    who = np.array(who, dtype=np.int64)
    member_share = int(orders * 0.7)
    if len(days) > member_share:  # keep the earliest purchases of a random selection
        keep = np.sort(rng.choice(len(days), member_share, replace=False))
        days, who = days[keep], who[keep]
    anonymous = orders - len(days)
    days = np.concatenate([days, rng.uniform(0, year, anonymous)])
    who = np.concatenate([who, np.full(anonymous, -1, dtype=np.int64)])
    order = np.argsort(days, kind="stable")
    return Plan(
        days=days[order],
        person=who[order],
        first_name=rng.integers(0, len(FIRST), people),
        last_name=rng.integers(0, len(LAST), people),
        has_email=rng.random(people) < 0.75,
        budget=rng.choice([0, 0, 1, 1, 1, 2], people),
        web_share=rng.beta(2.0, 2.5, people),
        home_store=rng.integers(0, max(stores, 1), people),
    )


class _Catalog:
    """Per channel, the demo articles' published prices in three bands (cheap, middle,
    premium): the retailer's own articles in the same channels are not the demo's to sell."""

    def __init__(self, channels: dict[str, Channel]):
        self.bands: dict[str, list[list[tuple]]] = {}
        demo_variants = set(demo_variant_ids())
        for code, channel in channels.items():
            rows = list(
                ChannelPrice.objects.filter(
                    channel=channel, published=True, variant__is_active=True
                )
                .order_by("amount", "variant__sku")
                .values_list(
                    "variant_id",
                    "variant__sku",
                    "variant__product__name",
                    "variant__name",
                    "amount",
                )
            )
            priced = [
                (v, sku, f"{p} {n}".strip()[:300], amount)
                for v, sku, p, n, amount in rows
                if v in demo_variants
            ]
            third = max(1, len(priced) // 3)
            self.bands[code] = [priced[:third], priced[third : 2 * third], priced[2 * third :]]


def seed_bulk(
    *,
    orders: int,
    people: int,
    seed: str,
    progress: Callable[[int, int], None] | None = None,
    batch: int = BATCH,
) -> int:
    """Write the bulk history up to `orders` orders; returns how many were added."""
    done = Order.objects.filter(client_id__startswith=KEY_PREFIX).count()
    if done >= orders:
        return 0
    channels = {c.code: c for c in Channel.objects.filter(code__in=["web", "pos"])}
    if len(channels) < 2:
        return 0
    own = demo_locations()  # never a shop's own, of a demo code or not
    stores = list(own.filter(feeds__channel=channels["pos"]).distinct().order_by("code"))
    shippers = list(
        ChannelLocation.objects.filter(
            channel=channels["web"], location__in=own, location__ships=True
        )
        .order_by("priority")
        .values_list("location_id", flat=True)
    )
    plan = make_plan(orders=orders, people=people, seed=seed, stores=len(stores))
    writer = _Writer(
        channels=channels,
        catalog=_Catalog(channels),
        stores=stores,
        shippers=shippers,
        plan=plan,
        start=timezone.now().replace(hour=8, minute=0, second=0, microsecond=0)
        - timedelta(days=365),
        seed=seed,
    )
    for lo in range(done - done % batch, orders, batch):
        hi = min(lo + batch, orders)
        with transaction.atomic():
            writer.write(lo, hi)
        if progress:
            progress(hi, orders)
    refresh_planner_statistics()
    return orders - done


class _Writer:
    def __init__(self, *, channels, catalog, stores, shippers, plan, start, seed):
        self.channels, self.catalog, self.plan = channels, catalog, plan
        self.stores, self.pickups = stores, [s for s in stores if s.pickup]
        self.shippers, self.start, self.seed = shippers, start, seed
        self.now = timezone.now()
        known = Member.objects.filter(phone__startswith=PHONE_PREFIX).values_list("phone", "id")
        self.member_of = {int(phone[len(PHONE_PREFIX) :]): pk for phone, pk in known}
        self.seen = set(
            MemberChannel.objects.filter(member_id__in=self.member_of.values()).values_list(
                "member_id", "channel_id", "location_id"
            )
        )

    def _person_row(self, i: int, member_id: int, when: datetime) -> tuple:
        first = FIRST[self.plan.first_name[i]]
        last = LAST[self.plan.last_name[i]]
        email = (
            f"{slugify(first)}.{slugify(last)}.b{i}@example.com" if self.plan.has_email[i] else None
        )
        return (member_id, email, f"{PHONE_PREFIX}{i:07d}", first, last, when)

    def _when(self, days: float) -> datetime:
        return min(self.start + timedelta(days=float(days)), self.now)

    def write(self, lo: int, hi: int) -> None:
        plan, rng = self.plan, random.Random(f"{self.seed}-{lo}")
        # Members first seen in this batch.
        new_people = []
        for n in range(lo, hi):
            i = int(plan.person[n])
            if i >= 0 and i not in self.member_of:
                self.member_of[i] = None
                new_people.append((i, n))
        member_ids = next_ids(Member, len(new_people))
        members = []
        for (i, n), member_id in zip(new_people, member_ids, strict=True):
            self.member_of[i] = member_id
            members.append(self._person_row(i, member_id, self._when(plan.days[n])))

        order_ids = next_ids(Order, hi - lo)
        orders, lines, allocations, payments, ledger, points, seen = [], [], [], [], [], [], []
        returns, return_lines, returned_units = [], [], []
        sold = defaultdict(int)  # goods delivered just before the batch
        for n, order_id in zip(range(lo, hi), order_ids, strict=True):
            i = int(plan.person[n])
            member_id = self.member_of[i] if i >= 0 else None
            when = self._when(plan.days[n])
            web_share = plan.web_share[i] if i >= 0 else 0.45
            channel = self.channels["web" if rng.random() < web_share else "pos"]
            if channel.code == "web":
                if self.pickups and rng.random() < 0.3:
                    fulfillment = Order.Fulfillment.PICKUP
                    where = self.pickups[
                        (plan.home_store[i] if i >= 0 else rng.randrange(99)) % len(self.pickups)
                    ].pk
                else:
                    fulfillment, where = Order.Fulfillment.SHIP, self.shippers[0]
            else:
                fulfillment = Order.Fulfillment.IN_STORE
                home = plan.home_store[i] if i >= 0 and rng.random() < 0.8 else rng.randrange(99)
                where = self.stores[home % len(self.stores)].pk
            band = self.catalog.bands[channel.code][plan.budget[i] if i >= 0 else rng.randrange(3)]
            wanted: dict[int, list] = {}
            for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
                item = rng.choice(band)
                wanted.setdefault(item[0], [item, 0])[1] += rng.choice([1, 1, 2])
            if fulfillment == Order.Fulfillment.IN_STORE:
                status = Order.Status.COMPLETED
            elif rng.random() < 0.05:
                status = Order.Status.CANCELLED
            elif fulfillment == Order.Fulfillment.PICKUP:
                status = Order.Status.PICKED_UP
            else:
                status = Order.Status.SHIPPED
            handed_over = min(
                when + timedelta(hours=0 if status == Order.Status.COMPLETED else 26), self.now
            )
            reference = f"order:{order_id}"
            total = Decimal("0.00")
            order_lines = []
            for (variant_id, sku, name, amount), quantity in wanted.values():
                line_total = (amount * quantity).quantize(CENT)
                total += line_total
                order_lines.append((variant_id, sku, name, amount, quantity, line_total))
                if status == Order.Status.COMPLETED:
                    ledger.append((variant_id, where, -quantity, 0, "sale", reference, when))
                else:
                    ledger.append((variant_id, where, 0, quantity, "reservation", reference, when))
                    if status == Order.Status.CANCELLED:
                        ledger.append(
                            (variant_id, where, 0, -quantity, "release", reference, handed_over)
                        )
                    else:
                        ledger.append(
                            (
                                variant_id,
                                where,
                                -quantity,
                                -quantity,
                                "sale",
                                reference,
                                handed_over,
                            )
                        )
                if status != Order.Status.CANCELLED:
                    sold[(variant_id, where)] += quantity
            earned = 0
            if member_id is not None and status != Order.Status.CANCELLED:
                earned = int((total * channel.points_per_unit).to_integral_value(ROUND_DOWN))
                if earned > 0:
                    points.append((member_id, "earned", earned, order_id, None, handed_over))
            if member_id is not None:  # seen where they ordered, as at placement
                place = None if fulfillment == Order.Fulfillment.SHIP else where
                if (member_id, channel.pk, place) not in self.seen:
                    self.seen.add((member_id, channel.pk, place))
                    seen.append((member_id, channel.pk, place, when))
            orders.append(
                (
                    order_id,
                    channel.pk,
                    Order.number_for(channel_code=channel.code, order_id=order_id),
                    fulfillment,
                    status,
                    where if fulfillment == Order.Fulfillment.IN_STORE else None,
                    where if fulfillment == Order.Fulfillment.PICKUP else None,
                    member_id,
                    earned,
                    channel.currency,
                    total,
                    Decimal("0.00"),
                    total,
                    False,
                    f"{KEY_PREFIX}{n:07d}",
                    when,
                    handed_over,
                )
            )
            if status != Order.Status.CANCELLED:
                method = "card" if channel.code == "web" or rng.random() < 0.7 else "cash"
                payments.append((order_id, method, total))
            lines.append((order_id, order_lines, where))
            if status != Order.Status.CANCELLED and rng.random() < 0.05:
                back = min(handed_over + timedelta(days=rng.randint(2, 20)), self.now)
                store = rng.choice(self.stores).pk
                returned_units.append(
                    (order_id, order_lines[0], store, rng.random() < 0.8, back, member_id, earned)
                )

        # Lines and allocations need their ids; so do returns.
        line_ids = iter(next_ids(OrderLine, sum(len(ls) for _, ls, _ in lines)))
        line_rows, first_line_of = [], {}
        for order_id, order_lines, where in lines:
            for variant_id, sku, name, amount, quantity, line_total in order_lines:
                line_id = next(line_ids)
                first_line_of.setdefault(order_id, line_id)
                line_rows.append(
                    (line_id, order_id, variant_id, sku, name, amount, quantity, line_total)
                )
                allocations.append((line_id, where, quantity))
        totals = {row[0]: row[12] for row in orders}
        return_ids = next_ids(Return, len(returned_units))
        for (order_id, line, store, restock, back, member_id, earned), return_id in zip(
            returned_units, return_ids, strict=True
        ):
            variant_id, _, _, amount, _, _ = line
            refund = amount  # one unit of the first line; no discounts in the demo
            returns.append((return_id, order_id, store, restock, refund, back))
            return_lines.append((return_id, first_line_of[order_id], 1, refund))
            if restock:
                ledger.append((variant_id, store, 1, 0, "return", f"return:{return_id}", back))
            if member_id is not None and earned:
                reversed_points = int(
                    (earned * min(Decimal(1), refund / totals[order_id])).to_integral_value()
                )
                if reversed_points > 0:
                    points.append(
                        (member_id, "reversed", -reversed_points, order_id, return_id, back)
                    )

        first_day = self._when(plan.days[lo]) - timedelta(hours=1)
        deliveries = [
            (variant_id, location_id, quantity, 0, "receipt", "demo-delivery", first_day)
            for (variant_id, location_id), quantity in sorted(sold.items())
        ]
        bulk_members(members)
        bulk_seen(seen)
        copy_rows(
            Order,
            (
                "id",
                "channel_id",
                "number",
                "fulfillment",
                "status",
                "location_id",
                "pickup_location_id",
                "member_id",
                "points_earned",
                "currency",
                "subtotal",
                "discount",
                "total",
                "needs_review",
                "client_id",
                "created_at",
                "updated_at",
            ),
            orders,
        )
        copy_rows(
            OrderLine,
            (
                "id",
                "order_id",
                "variant_id",
                "sku",
                "name",
                "unit_price",
                "quantity",
                "line_total",
                "discount",
            ),
            ((*row, Decimal("0.00")) for row in line_rows),
        )
        copy_rows(Allocation, ("line_id", "location_id", "quantity"), allocations)
        copy_rows(Payment, ("order_id", "method", "amount"), payments)
        copy_rows(
            Return, ("id", "order_id", "location_id", "restock", "refund", "created_at"), returns
        )
        copy_rows(ReturnLine, ("ret_id", "line_id", "quantity", "refund"), return_lines)
        bulk_ledger(deliveries + ledger)
        bulk_points(points)
