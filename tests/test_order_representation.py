"""The order answer is built by hand (orders.api.serializers.order_answer, for speed), from a
model instance (one order) or from plain values (a list page); the declared fields stay the
schema. Here the three ways render every kind of order the demo makes and must give the
same JSON: any field added to one and not the others fails."""

import random

import pytest
from rest_framework import serializers

import catalog.demo
import omnichannel.demo
import orders.demo
from catalog.models import ChannelPrice
from customers.models import Member
from customers.services import points_value
from inventory.models import StockLevel
from inventory.services import stock_count
from omnichannel.models import Channel, Location
from orders.api.serializers import OrderSerializer, order_answer
from orders.models import Order
from orders.routing import ship_candidates
from orders.selectors import ORDER_VALUES, order_list, order_lookup, order_page_details
from orders.services import LineRequest, PaymentRequest, order_place

pytestmark = pytest.mark.django_db


def generic(order: Order) -> dict:
    """What DRF's walk over the declared fields gives."""
    return serializers.ModelSerializer.to_representation(OrderSerializer(), order)


def add_what_the_demo_never_makes() -> None:
    """A discounted in-store sale paid by card and points, an offline sale that oversold
    (needs review), and a parcel split over two locations because neither holds the three
    units alone."""
    web, pos = Channel.objects.get(code="web"), Channel.objects.get(code="pos")
    store = Location.objects.filter(feeds__channel=pos).order_by("code").first()
    price = ChannelPrice.objects.filter(channel=pos, published=True).order_by("id").first()
    stock_count(variant_id=price.variant_id, location_id=store.pk, counted=50)
    member = Member.objects.filter(points__gte=100).order_by("id").first()
    total = price.amount * 3 - 1
    order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        lines=[LineRequest(price.variant.sku, 3)],
        discount=1,
        member=member,
        redeem_points=100,
        payments=[PaymentRequest("card", total - points_value(100))],
    )
    stock_count(variant_id=price.variant_id, location_id=store.pk, counted=0)
    order_place(
        channel=pos,
        fulfillment="in_store",
        location=store,
        lines=[LineRequest(price.variant.sku, 1)],
        allow_oversell=True,
    )

    sku = ChannelPrice.objects.filter(channel=web, published=True).order_by("id")[5].variant.sku
    variant_id = ChannelPrice.objects.get(channel=web, variant__sku=sku).variant_id
    for n, candidate in enumerate(ship_candidates(channel_id=web.pk)):
        level = StockLevel.objects.filter(variant_id=variant_id, location_id=candidate.location_id)
        reserved = level.values_list("reserved", flat=True).first() or 0
        spare = 2 if n < 2 else 0
        stock_count(
            variant_id=variant_id,
            location_id=candidate.location_id,
            counted=reserved + candidate.safety_stock + spare,
        )
    order_place(channel=web, fulfillment="ship", lines=[LineRequest(sku, 3)])


def test_the_hand_built_answer_is_the_declared_fields_answer(monkeypatch):
    omnichannel.demo.seed()
    catalog.demo.seed(size="small", rng=random.Random("repr"))
    monkeypatch.setitem(orders.demo.SIZES, "small", 250)
    orders.demo.seed(size="small", rng=random.Random("repr"))
    add_what_the_demo_never_makes()
    every = [
        order_lookup(key=str(pk)) for pk in order_list(client=None).values_list("pk", flat=True)
    ]
    assert len(every) >= 250

    # The kinds of order whose answers differ in shape, each present at least once.
    kinds = {
        "in store": [o for o in every if o.fulfillment == "in_store"],
        "pickup": [o for o in every if o.pickup_location_id],
        "ship": [o for o in every if o.fulfillment == "ship"],
        "no location": [o for o in every if o.location_id is None],
        "member": [o for o in every if o.member_id],
        "no member": [o for o in every if o.member_id is None],
        "payments": [o for o in every if o.payments.all()],
        "discount": [o for o in every if o.discount],
        "points earned": [o for o in every if o.points_earned],
        "cancelled": [o for o in every if o.status == "cancelled"],
        "needs review": [o for o in every if o.needs_review],
        "split": [o for o in every if any(len(li.allocations.all()) > 1 for li in o.lines.all())],
        "several lines": [o for o in every if len(o.lines.all()) > 1],
    }
    assert not [name for name, found in kinds.items() if not found]

    expected = [generic(order) for order in every]
    for order, answer in zip(every, expected, strict=True):
        assert OrderSerializer(order).data == answer, order.number
    assert OrderSerializer(every, many=True).data == expected
    page = order_page_details(list(order_list(client=None).values(*ORDER_VALUES)))
    assert [order_answer(row) for row in page] == expected


@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris", "America/New_York"])
def test_a_list_pages_times_read_as_the_declared_field_writes_them(zone, settings):
    """orders.api.serializers._when against DRF's DateTimeField, in and out of UTC, across a
    daylight-saving change, with microseconds and without."""
    from datetime import UTC, datetime

    from django.utils import timezone
    from rest_framework import serializers as drf

    from orders.api.serializers import _when

    settings.TIME_ZONE = zone
    field = drf.DateTimeField()
    moments = [
        datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ]
    with timezone.override(zone):
        for moment in moments:
            assert _when(moment) == field.to_representation(moment)
        expected = {
            "UTC": "2026-03-29T00:59:59Z",
            "Europe/Paris": "2026-03-29T01:59:59+01:00",
            "America/New_York": "2026-03-28T20:59:59-04:00",
        }
        assert _when(moments[0]) == expected[zone]
