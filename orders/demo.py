"""A year of demo orders across channels for `seed_demo`, placed through the real services.
They sell the demo's own articles from the demo's own locations: a retailer's articles
priced in the same channels, or their stores feeding them (one coded like a demo store
included: `omnichannel.demo.demo_locations`), are not the demo's to sell.

Store sales, web orders shipped or collected, a few cancellations and returns, each dated
over the last year. Goods arrive by a delivery just before they are sold, so the ledger
explains every unit. Each order is keyed `demo-<n>`: a second run adds nothing."""

import random
from collections.abc import Callable
from datetime import timedelta

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from catalog.demo import demo_variant_ids
from catalog.models import ChannelPrice
from customers.services import Contact, MemberConflict, member_upsert
from inventory.services import StockLine, stock_receive
from omnichannel.demo import demo_locations
from omnichannel.models import Channel, ChannelLocation

from .models import Order
from .services import LineRequest, order_place, order_return, order_transition

# Through the services; `--size large` adds a million more in bulk (orders.demo_bulk).
SIZES = {"small": 1000, "large": 1000}
PEOPLE = {"small": 300, "large": 300}
FIRST = [
    "Alice",
    "Bruno",
    "Chloé",
    "David",
    "Emma",
    "Farid",
    "Gabrielle",
    "Hugo",
    "Inès",
    "Jules",
    "Karim",
    "Léa",
    "Manon",
    "Nathan",
    "Océane",
    "Paul",
    "Rose",
    "Sacha",
]
LAST = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefebvre",
    "Michel",
    "Garcia",
    "Roux",
]


def _people(count: int, rng: random.Random) -> list[dict]:
    """Shoppers, not yet members: they become members the first time they give a contact."""
    people = []
    for n in range(count):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        has_phone, has_email = rng.random() < 0.8, rng.random() < 0.7
        people.append(
            {
                "first_name": first,
                "last_name": last,
                "phone": f"+3361{n:07d}" if has_phone or not has_email else None,
                "email": f"{slugify(first)}.{slugify(last)}.{n}@example.com" if has_email else None,
                # Each shopper has a usual budget: what CLV's spend model learns from.
                "budget": rng.choice([0, 0, 1, 1, 1, 2]),
            }
        )
    return people


def _member_for(person: dict, channel, where, rng: random.Random):
    """At a till people give their phone; online their email, sometimes with the phone."""
    if channel.code == "pos":
        contact = Contact(
            phone=person["phone"] or None,
            email=None if person["phone"] else person["email"],
            first_name=person["first_name"],
        )
    else:
        contact = Contact(
            email=person["email"] or None,
            first_name=person["first_name"],
            last_name=person["last_name"],
            phone=person["phone"] if rng.random() < 0.4 or not person["email"] else None,
        )
    try:
        member, _ = member_upsert(contact=contact, channel=channel, location=where)
    except MemberConflict:  # known twice already: left for staff to merge, like real life
        member, _ = member_upsert(
            contact=Contact(email=contact.email) if contact.email else Contact(phone=contact.phone),
            channel=channel,
            location=where,
        )
    return member


def seed(*, size: str, rng: random.Random, progress: Callable[[int, int], None] | None = None):
    count = SIZES[size]
    done = set(
        Order.objects.filter(client_id__startswith="demo-").values_list("client_id", flat=True)
    )
    channels = {c.code: c for c in Channel.objects.filter(code__in=["web", "pos"])}
    if len(channels) < 2:
        return 0
    demo_variants = set(demo_variant_ids())
    skus = {}  # per channel: three price bands (cheap, middle, premium) of (sku, variant_id)
    for code in channels:
        priced = [
            (sku, variant_id)
            for sku, variant_id in ChannelPrice.objects.filter(
                channel=channels[code], published=True
            )
            .order_by("amount", "variant__sku")
            .values_list("variant__sku", "variant_id")
            if variant_id in demo_variants
        ]
        third = max(1, len(priced) // 3)
        skus[code] = [priced[:third], priced[third : 2 * third], priced[2 * third :]]
    own = demo_locations()  # never a shop's own store of a demo code
    stores = list(own.filter(feeds__channel=channels["pos"]).distinct())
    pickups = [store for store in stores if store.pickup]
    first_shipper = (
        ChannelLocation.objects.filter(
            channel=channels["web"], location__in=own, location__ships=True
        )
        .order_by("priority")
        .values_list("location_id", flat=True)
        .first()
    )
    people = _people(PEOPLE[size], random.Random(f"{rng.random()}-people"))
    year_ago = timezone.now() - timedelta(days=365)
    made = 0
    for n in range(count):
        key = f"demo-{n:06d}"
        if key in done:
            continue
        when = year_ago + timedelta(days=365 * n / count, minutes=rng.randint(0, 600))
        web = rng.random() < 0.45
        channel = channels["web" if web else "pos"]
        person = rng.choice(people) if rng.random() < 0.7 else None
        band = skus[channel.code][person["budget"] if person else rng.randrange(3)]
        lines = [rng.choice(band) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
        wanted = {}
        for sku, variant_id in lines:
            wanted[(sku, variant_id)] = wanted.get((sku, variant_id), 0) + rng.choice([1, 1, 2])
        with transaction.atomic():
            if web and rng.random() < 0.3 and pickups:
                fulfillment, where = "pickup", rng.choice(pickups)
            elif web:
                fulfillment, where = "ship", None
            else:
                fulfillment, where = "in_store", rng.choice(stores)
            member = _member_for(person, channel, where, rng) if person else None
            arrive_at = where.pk if where else first_shipper
            stock_receive(  # a little more than sold: stores keep safety stock for the web
                lines=[StockLine(v, arrive_at, q + 3) for (_, v), q in wanted.items()],
                reference="demo-delivery",
            )
            order = order_place(
                channel=channel,
                fulfillment=fulfillment,
                lines=[LineRequest(sku, q) for (sku, _), q in wanted.items()],
                location=where if fulfillment == "in_store" else None,
                pickup_location=where if fulfillment == "pickup" else None,
                client_id=key,
                member=member,
            )
            fate = rng.random()
            if fulfillment != "in_store":
                if fate < 0.05:
                    order_transition(order_id=order.pk, action="cancel")
                elif fulfillment == "pickup":
                    order_transition(order_id=order.pk, action="ready_for_pickup")
                    order_transition(order_id=order.pk, action="picked_up")
                else:
                    order_transition(order_id=order.pk, action="ship")
            order.refresh_from_db()
            if order.status in ("completed", "picked_up", "shipped") and fate > 0.95:
                first = order.lines.first()
                order_return(
                    order_id=order.pk,
                    location=rng.choice(stores),
                    lines=[LineRequest(first.sku, 1)],
                    restock=rng.random() < 0.8,
                )
            Order.objects.filter(pk=order.pk).update(created_at=when)
        made += 1
        if progress and made % 50 == 0:
            progress(n + 1, count)
    if progress:
        progress(count, count)
    return made
