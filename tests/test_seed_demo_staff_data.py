"""seed_demo run on an installation that holds the retailer's own rows (made by staff, not by
the seed): the demo rows are reset, the staff's rows stay as they are. `make run` seeds on
every start, so this is every start of a shop that went live on the demo's installation.

The demo is scaled down here (40 products, 30 orders): what is checked is whose rows the
seed touches, not its size (tests/test_seed_demo.py seeds the real small demo)."""

import threading
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.test import override_settings

import catalog.demo
import omnichannel.demo
import orders.demo
from catalog.models import Category, ChannelPrice, Product, Variant
from inventory.models import StockLevel, StockMovement
from inventory.services import StockLine, stock_receive
from omnichannel.models import ApiClient, Channel, ChannelLocation, Location
from orders.models import Order, OrderLine
from tests.concurrency import require_postgres, until_waiting
from tests.test_seed_demo import printed_logins

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


def test_seed_demo_does_not_sell_the_staff_articles_in_its_demo_orders():
    """The first seed on an installation whose web and pos channels already sell the
    retailer's own article, from its own store: the demo's year of orders sells the demo's
    articles from the demo's locations, never real goods from a real shop."""
    shop, variant = staff_catalog()
    for code, kind in (("web", "web"), ("pos", "pos")):
        channel = Channel.objects.create(code=code, name=code, kind=kind, currency="EUR")
        ChannelPrice.objects.create(variant=variant, channel=channel, amount=Decimal("1.00"))
        ChannelLocation.objects.create(channel=channel, location=shop, priority=1)
    seed()
    demo_orders = Order.objects.filter(client_id__startswith="demo-")
    assert demo_orders.count() == 30
    sold = OrderLine.objects.filter(order__in=demo_orders, variant=variant)
    assert not sold.exists(), f"{sold.count()} demo order lines sell the staff article"
    assert not demo_orders.filter(location=shop).exists()
    assert not demo_orders.filter(pickup_location=shop).exists()
    assert not StockMovement.objects.filter(location=shop).exists()
    assert not StockMovement.objects.filter(variant=variant).exists()


def staff_logins():
    """A retailer's own superuser named `admin` (the name createsuperuser suggests) and a
    `manager` login in its own group, made before the seed is ever run."""
    users = get_user_model()
    admin = users.objects.create_user("admin", email="ops@shop.example", password="Real-pass-1")
    admin.is_staff = admin.is_superuser = True
    admin.save()
    manager = users.objects.create_user("manager", email="", password="Boss-pass-1")
    manager.groups.add(Group.objects.create(name="Head office"))
    return admin, manager


def test_seed_demo_keeps_an_existing_staff_login_and_channel_as_staff_set_them():
    admin, manager = staff_logins()
    Channel.objects.create(
        code="web", name="Our web shop", kind="web", currency="EUR", points_per_unit=2
    )
    output = seed()
    # The demo's merchandiser plays with its login; the re-seed puts it back, and still
    # leaves the staff's logins alone.
    get_user_model().objects.filter(username="merchandiser").update(is_active=False)
    second_output = seed()

    admin.refresh_from_db()
    manager.refresh_from_db()
    assert admin.check_password("Real-pass-1") and not admin.check_password("admin-demo")
    assert (admin.email, admin.is_staff, admin.is_superuser) == ("ops@shop.example", True, True)
    assert manager.check_password("Boss-pass-1") and not manager.check_password("manager-demo")
    assert (manager.email, manager.is_staff, manager.is_superuser) == ("", False, False)
    assert list(manager.groups.values_list("name", flat=True)) == ["Head office"]
    web = Channel.objects.get(code="web")
    assert (web.name, web.currency, web.points_per_unit) == ("Our web shop", "EUR", 2)
    assert Channel.objects.get(code="pos").name == "Stores"  # missing: made by the seed

    # What it prints: the demo's own login, and that the staff's ones are not the demo's.
    for printed in (output, second_output):
        assert printed_logins(printed) == {"merchandiser": "merchandiser-demo"}
        for username in ("admin", "manager"):
            assert f"  {username}: a staff login of this name exists" in printed
    merchandiser = get_user_model().objects.get(username="merchandiser")
    assert merchandiser.is_active and merchandiser.email == "merchandiser@demo.example"
    assert merchandiser.check_password("merchandiser-demo")


def test_seed_demo_stops_on_a_channel_in_another_currency_having_written_nothing():
    """The shop's own web channel sells in pounds: demo prices in euros in it would be
    wrong prices on a live storefront. The seed refuses, before it writes anything (a
    retailer who started `make run` on a shop's database gets an error, not a half demo)."""
    admin, _ = staff_logins()
    Channel.objects.create(code="web", name="Our web shop", kind="web", currency="GBP")
    groups = list(Group.objects.order_by("pk").values_list("pk", "name"))
    with pytest.raises(CommandError, match=r"Channel web is in GBP, the demo's prices are in EUR"):
        seed()
    assert list(Channel.objects.values_list("code", "name", "currency")) == [
        ("web", "Our web shop", "GBP")
    ]
    assert set(get_user_model().objects.values_list("username", flat=True)) == {
        "admin",
        "manager",
    }
    assert not Location.objects.exists() and not Product.objects.exists()
    assert not ApiClient.objects.exists()
    assert list(Group.objects.order_by("pk").values_list("pk", "name")) == groups
    admin.refresh_from_db()
    assert admin.check_password("Real-pass-1")


@pytest.mark.django_db(transaction=True)
def test_two_network_seeds_at_once_both_succeed():
    """Two seeds at once (two `make run`s, or `make run` beside `docker compose exec web ...
    seed_demo`): the first has written the demo's channels and logins, not committed yet,
    when the second starts. The second found no channel, created one and failed with an
    IntegrityError on the first's (the same on the logins); it now waits for the first and
    finds its rows."""
    require_postgres()
    first_done, release = threading.Event(), threading.Event()
    errors = []

    def first():
        try:
            with transaction.atomic():
                omnichannel.demo.seed()
                first_done.set()
                release.wait(10)
        except Exception as exc:
            errors.append(("first", exc))
            first_done.set()
        finally:
            connections.close_all()

    def second():
        try:
            omnichannel.demo.seed()
        except Exception as exc:
            errors.append(("second", exc))
        finally:
            connections.close_all()

    a = threading.Thread(target=first)
    a.start()
    assert first_done.wait(30)
    b = threading.Thread(target=second)
    b.start()
    try:
        until_waiting(1)  # the second seed queued behind the first
    finally:
        release.set()
        a.join(30)
        b.join(30)
    assert errors == []
    assert sorted(Channel.objects.values_list("code", flat=True)) == ["pos", "web"]
    users = get_user_model().objects.filter(email__endswith="@demo.example")
    assert sorted(users.values_list("username", flat=True)) == ["admin", "manager", "merchandiser"]
    assert ApiClient.objects.filter(name__startswith="Demo ").count() == 2


def test_seed_demo_leaves_a_retailers_own_store_of_a_demo_code_alone(web, pos):
    """A retailer's own Bordeaux store, coded `bordeaux`, made before the demo ever ran, on an
    installation whose web and pos channels already exist; staff feed it to pos themselves.
    It is not the demo's (not at the demo's address): its name, address and flags were
    rewritten, it was fed to the demo's channels, the demo's stock was counted and the demo's
    year of in-store sales rung up at it. Now it is left as it is, over two seeds, and the
    demo sells from its other stores."""
    own = Location.objects.create(
        code="bordeaux",
        name="Bordeaux Intendance",
        kind=Location.Kind.STORE,
        ships=True,
        pickup=False,
        address_line1="1 cours de l'Intendance",
        postal_code="33000",
        city="Bordeaux",
        country="FR",
    )
    ChannelLocation.objects.create(channel=pos, location=own, priority=7, safety_stock=1)
    output = seed()
    second_output = seed()

    own.refresh_from_db()
    assert (own.name, own.address_line1, own.ships, own.pickup) == (
        "Bordeaux Intendance",
        "1 cours de l'Intendance",
        True,
        False,
    )
    assert list(own.feeds.values_list("channel__code", "priority", "safety_stock")) == [
        ("pos", 7, 1)
    ]
    demo_orders = Order.objects.filter(client_id__startswith="demo-")
    assert demo_orders.count() == 30
    assert not demo_orders.filter(location=own).exists()
    assert not demo_orders.filter(pickup_location=own).exists()
    assert not StockMovement.objects.filter(location=own).exists()
    assert not StockLevel.objects.filter(location=own).exists()
    # The demo's own stores and warehouse: made, fed and sold from as ever.
    assert set(demo_orders.exclude(location=None).values_list("location__code", flat=True)) <= {
        "lyon-centre",
        "paris-marais",
    }
    assert set(
        ChannelLocation.objects.exclude(location=own).values_list("channel__code", "location__code")
    ) == {
        ("web", "wh-central"),
        ("web", "lyon-centre"),
        ("web", "paris-marais"),
        ("pos", "lyon-centre"),
        ("pos", "paris-marais"),
    }
    for printed in (output, second_output):
        assert "  location bordeaux: exists and is not the demo's" in printed


def test_seed_demo_puts_its_own_locations_name_and_flags_back_and_leaves_one_moved_alone():
    """The demo's own stores, played with in the admin: renamed, its flags switched, is
    still the demo's (its kind and address are the seed's) and is put back; one given
    another address is staff's from then on, left as they set it."""
    seed()
    Location.objects.filter(code="lyon-centre").update(name="Renamed", ships=False, pickup=False)
    Location.objects.filter(code="paris-marais").update(address_line1="1 rue de Rivoli")
    output = seed()
    lyon = Location.objects.get(code="lyon-centre")
    assert (lyon.name, lyon.ships, lyon.pickup) == ("Lyon Centre", True, True)
    paris = Location.objects.get(code="paris-marais")
    assert (paris.name, paris.address_line1) == ("Paris Marais", "1 rue de Rivoli")
    assert "  location paris-marais: exists and is not the demo's" in output
    assert "location lyon-centre" not in output


def test_seed_demo_stops_when_every_demo_store_code_is_a_shops_own_having_written_nothing():
    """A shop's own stores hold the demo's three store codes: the demo would have no store
    to sell in. The seed refuses, naming them, and writes nothing."""
    for code in ("lyon-centre", "paris-marais", "bordeaux"):
        Location.objects.create(code=code, name=code, kind=Location.Kind.STORE, city="Nantes")
    with pytest.raises(CommandError, match=r"Location lyon-centre, paris-marais, bordeaux: not"):
        seed()
    assert sorted(Location.objects.values_list("code", "name")) == [
        ("bordeaux", "bordeaux"),
        ("lyon-centre", "lyon-centre"),
        ("paris-marais", "paris-marais"),
    ]
    assert not Channel.objects.exists() and not Product.objects.exists()
    assert not get_user_model().objects.exists() and not ApiClient.objects.exists()
