"""Factories for every test: each test arranges its own data with these."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from catalog.models import Category, ChannelPrice, Product, Variant
from omnichannel.models import Channel, ChannelLocation, Location
from omnichannel.services import api_client_create


class ChannelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Channel
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"ch{n}")
    name = factory.LazyAttribute(lambda o: f"Channel {o.code}")
    kind = Channel.Kind.WEB
    currency = "EUR"


class LocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Location
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"loc{n}")
    name = factory.LazyAttribute(lambda o: f"Store {o.code}")
    kind = Location.Kind.STORE
    ships = True
    pickup = True
    city = "Lyon"
    country = "FR"


class ChannelLocationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelLocation

    channel = factory.SubFactory(ChannelFactory)
    location = factory.SubFactory(LocationFactory)
    priority = factory.Sequence(lambda n: n + 1)
    safety_stock = 0


class CategoryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Category

    name = factory.Sequence(lambda n: f"Category {n}")
    slug = factory.Sequence(lambda n: f"category-{n}")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    code = factory.Sequence(lambda n: f"P{n:05d}")
    name = factory.Sequence(lambda n: f"Product {n}")
    description = "A fine thing."
    category = factory.SubFactory(CategoryFactory)


def ean13(n: int) -> str:
    body = f"200{n:09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


class VariantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Variant

    product = factory.SubFactory(ProductFactory)
    sku = factory.Sequence(lambda n: f"SKU-{n:06d}")
    barcode = factory.Sequence(ean13)
    name = factory.LazyAttribute(lambda o: f"{o.product.name} M")
    attributes = factory.LazyFunction(lambda: {"size": "M"})


class ChannelPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ChannelPrice

    variant = factory.SubFactory(VariantFactory)
    channel = factory.SubFactory(ChannelFactory)
    amount = Decimal("19.90")
    published = True


def member_score(member, **fields):
    """An unsaved nightly score of a loyal member (fields given override it): for a test to
    save, or to bulk-create many."""
    from datetime import date

    from analytics.models import MemberScore

    defaults = {
        "as_of": date(2026, 3, 31),
        "first_purchase": date(2026, 1, 1),
        "last_purchase": date(2026, 3, 1),
        "recency_days": 30,
        "frequency": 2,
        "monetary": Decimal("10.00"),
        "r_score": 3,
        "f_score": 3,
        "m_score": 3,
        "segment": "loyal",
        "first_channel": "store",
    }
    return MemberScore(member=member, **{**defaults, **fields})


def make_staff(username: str = "staff", *perms: str, superuser: bool = False):
    """A staff user holding the given permissions ("app_label.codename")."""
    user = get_user_model().objects.create_user(
        username=username, password="pw-for-tests-123", is_staff=True, is_superuser=superuser
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def make_api_client(channel: Channel, location: Location | None = None, name: str = "client"):
    """An API client and its token (the location must feed the channel)."""
    return api_client_create(
        name=name, channel_code=channel.code, location_code=location.code if location else None
    )
