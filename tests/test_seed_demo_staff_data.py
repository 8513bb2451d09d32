"""seed_demo run on an installation that holds the retailer's own rows (made by staff, not by
the seed): the demo rows are reset, the staff's rows stay as they are. `make run` seeds on
every start, so this is every start of a shop that went live on the demo's installation.

The demo is scaled down here (40 products, 30 orders): what is checked is whose rows the
seed touches, not its size (tests/test_seed_demo.py seeds the real small demo)."""

from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings

import catalog.demo
import orders.demo
from catalog.models import Category, ChannelPrice, Product, Variant
from inventory.models import StockLevel, StockMovement
from inventory.services import StockLine, stock_receive
from omnichannel.models import Channel, ChannelLocation, Location

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def small_demo(monkeypatch):
    monkeypatch.setitem(catalog.demo.SIZES, "small", 40)
    monkeypatch.setitem(orders.demo.SIZES, "small", 30)
    monkeypatch.setitem(orders.demo.PEOPLE, "small", 20)


def seed() -> str:
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command("seed_demo", "--size", "small", stdout=out, stderr=StringIO())
    return out.getvalue()


def staff_catalog():
    """The retailer's own store and article."""
    shop = Location.objects.create(
        code="nantes",
        name="Nantes",
        kind=Location.Kind.STORE,
        ships=True,
        pickup=True,
        city="Nantes",
        country="FR",
    )
    category = Category.objects.create(name="Own brand", slug="own-brand")
    product = Product.objects.create(code="ACME-1", name="Acme tee", category=category)
    variant = Variant.objects.create(product=product, sku="ACME-1-M", barcode="4006381333931")
    return shop, variant


def test_seed_demo_leaves_the_staff_articles_stock_alone():
    """Staff received their article at their store, then sell it in the demo's channels
    from the demo's stores too: a re-seed counts the demo's articles at the demo's
    locations, never theirs (a count sets a level whatever it held)."""
    shop, variant = staff_catalog()
    stock_receive(lines=[StockLine(variant.pk, shop.pk, 7)], reference="po:1")
    seed()
    for code in ("web", "pos"):
        ChannelPrice.objects.create(
            variant=variant, channel=Channel.objects.get(code=code), amount=Decimal("12.00")
        )
    ChannelLocation.objects.create(channel=Channel.objects.get(code="pos"), location=shop)
    demo_article = Variant.objects.get(sku="P00001-S")
    stock_receive(lines=[StockLine(demo_article.pk, shop.pk, 5)], reference="po:2")
    lyon = Location.objects.get(code="lyon-centre")
    stock_receive(lines=[StockLine(variant.pk, lyon.pk, 3)], reference="po:3")
    seed()

    levels = dict(
        StockLevel.objects.filter(variant=variant).values_list("location__code", "on_hand")
    )
    assert levels == {"nantes": 7, "lyon-centre": 3}
    assert StockLevel.objects.get(variant=demo_article, location=shop).on_hand == 5
    touched = StockMovement.objects.filter(variant=variant).exclude(reference__startswith="po:")
    touched |= StockMovement.objects.filter(location=shop).exclude(reference__startswith="po:")
    assert not touched.exists(), sorted({f"{m.reason}/{m.reference}" for m in touched})
    # The demo's own stock is still the demo's: counted at every demo location.
    assert StockLevel.objects.filter(variant__product__code__startswith="P").exclude(
        location=shop
    ).count() == (Variant.objects.filter(product__code__startswith="P").count() * 4)
