"""seed_demo: idempotent, the documented shape, and what it prints really works.

The first small seed places a year of orders through the real services (most of a minute);
the second finds its work done (a few seconds). So this file seeds exactly twice, in one test;
the test of two seeds at once seeds a catalog and a year scaled down to a few rows.
"""

import random
import re
import signal
import subprocess
import sys
import threading
import time
from io import StringIO

import psycopg2
import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import Client, override_settings
from django.utils import timezone
from simple_history.models import HistoricalChanges

import catalog.demo
import omnichannel.demo
import orders.demo
from catalog.gtin import gtin14 as gtin14_of
from catalog.models import Category, ChannelPrice, Product, Variant
from inventory.models import StockLevel
from omnichannel.management.commands import seed_demo
from omnichannel.models import ApiClient, Channel, ChannelLocation, Location
from omnichannel.services import api_client_revoke
from orders.models import Order
from tests.concurrency import require_postgres
from tests.conftest import as_client
from tests.inventory_helpers import assert_ledger_matches_levels
from tests.test_make_run import ROOT, _env

pytestmark = pytest.mark.django_db

APPS = ("omnichannel", "catalog", "inventory", "orders", "customers", "analytics", "auth")


def seed() -> str:
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command("seed_demo", "--size", "small", stdout=out, stderr=StringIO())
    return out.getvalue()


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every model of the project (and auth), in primary key order, without the
    `auto_now` bookkeeping timestamps (a level counted to the value it already has is still
    touched); `Product.updated_at`, which storefronts sync on, is kept. Change history is
    append-only and checked on its own."""
    rows = {}
    for model in apps.get_models():
        if model._meta.app_label in APPS and not issubclass(model, HistoricalChanges):
            fields = [
                field.attname
                for field in model._meta.concrete_fields
                if not getattr(field, "auto_now", False)
            ]
            rows[model._meta.label] = list(model.objects.order_by("pk").values_list(*fields))
    return rows


def printed_tokens(output: str) -> list[str]:
    return re.findall(r"^\s+Demo .*\s(oc_demo_\w+)$", output, re.MULTILINE)


def printed_logins(output: str) -> dict[str, str]:
    return dict(re.findall(r"^\s+login (\S+)\s+password (\S+)$", output, re.MULTILINE))


def is_ean13(code: str) -> bool:
    if not re.fullmatch(r"\d{13}", code):
        return False
    digits = [int(d) for d in code]
    weighted = sum(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return (10 - weighted % 10) % 10 == digits[12]


def test_seed_demo_twice_is_idempotent_resets_demo_rows_and_what_it_prints_works():
    first_output = seed()
    first = snapshot()

    # Between the runs, someone plays with the demo: edits a product in the admin, revokes
    # the storefront token, deactivates the merchandiser, renames a store and switches its
    # flags (a demo location is put back to its name, ships and pickup; its kind and address
    # tell it from a shop's own: tests/test_seed_demo_staff_data.py). A re-seed puts all of
    # it back.
    history_counts = [model.history.count() for model in (Product, Variant, ChannelPrice)]
    edited = Product.objects.order_by("code").last()
    demo_name = edited.name
    edited.name = "Renamed in the admin"
    edited.save()
    storefront_token = printed_tokens(first_output)[0]
    api_client_revoke(client_id=ApiClient.objects.get(name="Demo storefront").pk)
    get_user_model().objects.filter(username="merchandiser").update(is_active=False)
    Location.objects.filter(code="bordeaux").update(name="Renamed", ships=True, pickup=False)
    before_second_run = timezone.now()

    second_output = seed()
    second = snapshot()

    # Nothing created, nothing deleted, the same values in every row of every table; the one
    # difference is the edited product's `updated_at`, moved so storefronts resync it.
    assert {label: len(rows) for label, rows in second.items()} == {
        label: len(rows) for label, rows in first.items()
    }
    updated_at = [f.attname for f in Product._meta.concrete_fields].index("updated_at")
    changed = [label for label, rows in first.items() if second[label] != rows]
    assert changed == ["catalog.Product"]
    moved = [
        (old, new)
        for old, new in zip(first["catalog.Product"], second["catalog.Product"], strict=True)
        if old != new
    ]
    assert [new[0] for _, new in moved] == [edited.pk]
    [(old, new)] = moved
    assert old[:updated_at] + old[updated_at + 1 :] == new[:updated_at] + new[updated_at + 1 :]
    assert new[updated_at] >= before_second_run
    assert printed_tokens(second_output) == printed_tokens(first_output)

    # Change history: the bulk-written demo rows have their first entry; the edit and the
    # reset of the edited product are the only new ones (variants and prices rewritten as
    # they were add none).
    assert history_counts == [500, 1500, 3000]
    assert [model.history.count() for model in (Product, Variant, ChannelPrice)] == [
        502,
        1500,
        3000,
    ]
    assert [
        (record.history_type, record.name, record.history_change_reason)
        for record in edited.history.order_by("history_id")
    ] == [
        ("+", demo_name, "seed_demo"),
        ("~", "Renamed in the admin", None),
        ("~", demo_name, "seed_demo"),
    ]
    assert printed_logins(second_output) == printed_logins(first_output)

    # The documented shape.
    stores = Location.objects.filter(kind="store")
    assert stores.count() == 3 and all(store.pickup and store.city for store in stores)
    assert stores.filter(ships=True).count() == 2
    [warehouse] = Location.objects.filter(kind="warehouse")
    assert warehouse.ships and not warehouse.pickup
    assert set(Channel.objects.values_list("code", "kind", "currency", "name")) == {
        ("web", "web", "EUR", "Web shop"),
        ("pos", "pos", "EUR", "Stores"),
    }
    web_feeds = list(
        ChannelLocation.objects.filter(channel__code="web")
        .order_by("priority")
        .values_list("location__kind", "location__ships", "priority", "safety_stock")
    )
    assert web_feeds == [("warehouse", True, 1, 0), ("store", True, 2, 2), ("store", True, 3, 2)]
    assert set(
        ChannelLocation.objects.filter(channel__code="pos").values_list("location", "safety_stock")
    ) == {(store.pk, 0) for store in stores}
    assert 15 <= Category.objects.count() <= 25
    assert not Product.objects.filter(category__children__isnull=False).exists()  # leaves only
    assert Product.objects.count() == 500
    assert Variant.objects.count() == 1500
    assert all(
        re.fullmatch(r"P\d{5}", code) for code in Product.objects.values_list("code", flat=True)
    )
    assert not Product.objects.filter(search_text="").exists()  # searchable at once
    variants = Variant.objects.values_list("sku", "product__code", "barcode", "gtin14")
    for sku, code, barcode, gtin14 in variants:
        assert sku.startswith(f"{code}-") and is_ean13(barcode), (sku, barcode)
        assert gtin14 == gtin14_of(barcode), (sku, barcode, gtin14)  # set by the bulk write
    assert ChannelPrice.objects.filter(channel__code="web", published=False).exists()
    assert StockLevel.objects.count() == 1500 * 4
    assert_ledger_matches_levels()

    # The printed tokens answer, each with its own channel's prices, confined to its channel.
    storefront, till = printed_tokens(first_output)
    assert storefront == storefront_token  # and the revoked one works again
    for token in (storefront, till):
        response = as_client(token).get("/api/v1/products/")
        assert response.status_code == 200
        products = response.json()["results"]
        assert products and all(
            variant["price"] for product in products for variant in product["variants"]
        )
    assert as_client(till).get("/api/v1/products/?channel=web").status_code == 403
    prices: dict[str, dict[str, tuple]] = {}
    for sku, channel, amount, published in ChannelPrice.objects.values_list(
        "variant__sku", "channel__code", "amount", "published"
    ):
        prices.setdefault(sku, {})[channel] = (amount, published)
    assert len(prices) == 1500  # every variant has a price in each channel
    assert all(set(by_channel) == {"web", "pos"} for by_channel in prices.values())
    sku, store_price, web_price = next(
        (sku, p["pos"][0], p["web"][0])
        for sku, p in sorted(prices.items())
        if p["web"][1] and p["pos"][0] != p["web"][0]
    )
    [at_till] = as_client(till).get(f"/api/v1/variants/?sku={sku}").json()["results"]
    [online] = as_client(storefront).get(f"/api/v1/variants/?sku={sku}").json()["results"]
    assert (at_till["price"], online["price"]) == (str(store_price), str(web_price))

    # The edited product is the only one a storefront syncing since the re-seed fetches.
    since = as_client(storefront).get(
        "/api/v1/products/", {"updated_since": before_second_run.isoformat()}
    )
    assert [product["id"] for product in since.json()["results"]] == [edited.pk]

    # The printed logins log in and open their pages.
    logins = printed_logins(first_output)
    assert set(logins) == {"admin", "merchandiser", "manager"}
    browser = Client()

    def log_in(username):  # through the admin's login form, as a person does
        form = {"username": username, "password": logins[username]}
        assert browser.post("/admin/login/", form).status_code == 302

    log_in("merchandiser")
    assert browser.get("/admin/catalog/product/").status_code == 200
    assert browser.get("/admin/inventory/stocklevel/").status_code == 200
    log_in("manager")
    assert browser.get("/admin/").status_code == 200
    log_in("admin")
    assert browser.get("/admin/omnichannel/apiclient/").status_code == 200


def test_seed_demo_refuses_production_without_force():
    with override_settings(DEBUG=False), pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", stdout=StringIO(), stderr=StringIO())
    assert not Product.objects.exists()
    assert not get_user_model().objects.filter(username="admin").exists()


def test_the_urls_printed_are_on_the_port_make_run_serves_not_8000(settings):
    """WEB_PORT=8215 make run served on 8215 and the seed printed Admin and Try URLs on 8000."""
    settings.WEB_PORT = 8215
    out = StringIO()
    network = {"logins": [], "staff_logins": [], "staff_locations": [], "tokens": {"x": "t"}}
    seed_demo.Command(stdout=out).summary("small", 1.0, network)
    urls = re.findall(r"http://\S+", out.getvalue())
    assert urls == ["http://127.0.0.1:8215/admin/", "http://127.0.0.1:8215/api/v1/products/"]


def test_seeding_queues_one_availability_sync_not_one_per_demo_order(
    monkeypatch, django_capture_on_commit_callbacks
):
    """Without Redis there is no debounce flag: each demo order's commit sent a message,
    and the worker found thousands queued ahead of beat's heartbeat (the file broker takes
    a few a second). The seed holds them and queues one at the end; the outbox keeps every
    change for it, and the sync publishes them all."""
    from inventory import availability
    from inventory.models import AvailabilityOutbox, ChannelAvailability

    monkeypatch.setattr(availability, "_redis", lambda: None)  # as with no REDIS_URL
    sent = []
    monkeypatch.setattr(availability, "_send_sync", lambda countdown=None: sent.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        seed()
    assert len(sent) == 1
    assert AvailabilityOutbox.objects.exists()  # what that one sync will read
    availability.availability_sync_pending(limit=100_000)
    assert not AvailabilityOutbox.objects.exists()
    web = Channel.objects.get(code="web")
    row = ChannelAvailability.objects.filter(channel=web).order_by("variant_id").first()
    assert row is not None and row.available == sum(
        max(0, entry["available"]) for entry in row.locations
    )


def tries_counted(monkeypatch) -> list[bool]:
    """The answers of the seed lock's tries, in order: a False is a seed waiting its turn."""
    answers = []
    real = seed_demo._try_seed_lock

    def counted(cursor):
        answers.append(real(cursor))
        return answers[-1]

    monkeypatch.setattr(seed_demo, "_try_seed_lock", counted)
    return answers


@pytest.mark.django_db(transaction=True)
def test_two_seeds_at_once_place_the_demo_year_of_orders_once(monkeypatch):
    """Two `make run`s at once: the orders step reads which demo orders exist ('demo-NNNNNN')
    once, then places the others one by one, with nothing unique on client_id for orders of
    no API client; two seeds in that step at once both placed the whole year, every demo
    order twice. The second seed now waits for the first, then finds everything done."""
    require_postgres()
    monkeypatch.setitem(catalog.demo.SIZES, "small", 20)
    monkeypatch.setitem(orders.demo.SIZES, "small", 10)
    monkeypatch.setitem(orders.demo.PEOPLE, "small", 10)
    tries = tries_counted(monkeypatch)
    omnichannel.demo.seed()  # a restart: the network and the catalog are there already
    catalog.demo.seed(size="small", rng=random.Random(f"{seed_demo.SEED}-catalog"))

    arrived = []
    real = orders.demo.demo_variant_ids

    def after_reading_done():  # called right after the orders step read the demo orders
        arrived.append(threading.current_thread().name)
        deadline = time.monotonic() + 20
        # Until the other seed is in this step too (the race) or waits its turn to start.
        while len(arrived) < 2 and False not in tries:
            assert time.monotonic() < deadline, "the other seed neither came nor waited"
            time.sleep(0.02)
        return real()

    monkeypatch.setattr(orders.demo, "demo_variant_ids", after_reading_done)
    errors, printed = [], []

    def run():
        err = StringIO()
        try:
            call_command("seed_demo", "--size", "small", stdout=StringIO(), stderr=err)
        except Exception as exc:
            errors.append(exc)
        finally:
            printed.append(err.getvalue())
            connections.close_all()

    with override_settings(DEBUG=True):
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert errors == []
    keys = list(
        Order.objects.filter(client_id__startswith="demo-").values_list("client_id", flat=True)
    )
    assert len(keys) == len(set(keys)) == 10
    waited = [out for out in printed if "Another seed_demo is running" in out]
    assert len(waited) == 1 and "A year of orders: 0 new orders" in waited[0]


WAITING_SEED = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
import django; django.setup()
from omnichannel.management.commands.seed_demo import one_seed_at_a_time
try:
    with one_seed_at_a_time(lambda: print("waiting", flush=True)):
        print("seeding", flush=True)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


def another_session():
    session = psycopg2.connect(**connection.get_connection_params())
    session.autocommit = True
    return session


@pytest.mark.django_db(transaction=True)
def test_ctrl_c_stops_a_seed_waiting_while_another_seeds(tmp_path):
    """It waited in `pg_advisory_lock`, a query psycopg2 does not interrupt: Ctrl-C did
    nothing until the other seed ended, minutes for --size large."""
    require_postgres()
    holder = another_session()  # a seed running
    holder.cursor().execute("SELECT pg_advisory_lock(%s)", [omnichannel.demo.SEED_LOCK])
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    child = subprocess.Popen(
        [sys.executable, "-c", WAITING_SEED],
        cwd=ROOT,
        env=_env(DATABASE_URL=url, VAR_DIR=str(tmp_path), PYTHONWARNINGS="ignore"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "waiting"
        time.sleep(0.5)  # well into its wait
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pytest.fail("Ctrl-C did not stop the waiting seed within 5 s")
        assert (child.returncode, child.stdout.read().strip()) == (130, "interrupted")
    finally:
        holder.close()  # the other seed ends
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.django_db(transaction=True)
def test_an_interrupt_right_after_taking_the_seed_lock_releases_it(monkeypatch):
    """The interrupt landed between taking the lock and the `try:` that released it."""
    require_postgres()
    real = seed_demo._try_seed_lock

    def taken_then_interrupted(cursor):
        real(cursor)
        raise KeyboardInterrupt

    monkeypatch.setattr(seed_demo, "_try_seed_lock", taken_then_interrupted)
    with pytest.raises(KeyboardInterrupt), seed_demo.one_seed_at_a_time(lambda: None):
        pytest.fail("seeded")
    other = another_session()
    try:
        cursor = other.cursor()
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [omnichannel.demo.SEED_LOCK])
        assert cursor.fetchone()[0], "the interrupted seed still holds the lock"
    finally:
        other.close()
