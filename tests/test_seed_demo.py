"""seed_demo: idempotent, the documented shape, and what it prints really works."""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.test import Client

from catalog.models import ChannelPrice, Product, Variant
from inventory.models import StockLevel
from omnichannel.models import Channel, Location
from tests.conftest import as_client
from tests.inventory_helpers import assert_ledger_matches_levels

pytestmark = pytest.mark.django_db

APPS = ("omnichannel", "catalog", "inventory", "orders", "customers", "analytics", "auth")


def counts() -> dict[str, int]:
    return {
        model._meta.label: model.objects.count()
        for model in apps.get_models()
        if model._meta.app_label in APPS
    }


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", "--size", "small", stdout=out, stderr=StringIO())
    return out.getvalue()


def test_seed_demo_twice_is_idempotent_and_what_it_prints_works(settings):
    settings.DEBUG = True
    first_output = seed()
    first = counts()
    levels = list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved"))
    second_output = seed()
    assert counts() == first
    assert list(StockLevel.objects.order_by("pk").values_list("on_hand", "reserved")) == levels

    def tokens_in(output):
        return [line.split()[-1] for line in output.splitlines() if "oc_demo_" in line]

    assert tokens_in(first_output) == tokens_in(second_output)  # tokens survive a re-seed

    # The documented shape.
    assert Location.objects.filter(kind="store").count() == 3
    assert Location.objects.filter(kind="warehouse").count() == 1
    assert set(Channel.objects.values_list("code", flat=True)) == {"web", "pos"}
    assert Product.objects.count() == 500
    assert Variant.objects.count() == 1500
    assert not Variant.objects.filter(prices__isnull=True).exists()
    for barcode in Variant.objects.values_list("barcode", flat=True)[:50]:
        digits = [int(d) for d in barcode]
        assert sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:-1])) % 10 == (
            (10 - digits[-1]) % 10
        )
    assert StockLevel.objects.count() == 1500 * 4
    assert ChannelPrice.objects.filter(published=False).exists()
    assert_ledger_matches_levels()

    # The printed tokens answer, confined to their channel.
    storefront, till = tokens_in(first_output)[:2]
    products = as_client(storefront).get("/api/v1/products/").json()["results"]
    assert products and products[0]["variants"][0]["price"]
    [variant] = as_client(till).get("/api/v1/variants/?sku=P00001-M").json()["results"]
    assert variant["price"]
    assert as_client(till).get("/api/v1/products/?channel=web").status_code == 403

    # The printed logins log in and open the admin.
    browser = Client()
    assert browser.login(username="merchandiser", password="merchandiser-demo")
    assert browser.get("/admin/catalog/variant/").status_code in (200, 404)
    assert browser.get("/admin/inventory/stocklevel/").status_code == 200
    assert browser.login(username="manager", password="manager-demo")
    assert browser.get("/admin/").status_code == 200


def test_seed_demo_refuses_production_without_force(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    assert not Product.objects.exists()
