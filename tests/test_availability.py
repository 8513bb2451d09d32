"""Channel availability: the rules, the API, and the outbox that keeps it in sync."""

from datetime import datetime

import pytest

from inventory.availability import availability_rebuild, availability_sync_pending
from inventory.models import AvailabilityOutbox, ChannelAvailability
from inventory.services import StockLine, stock_receive, stock_reserve, stock_sell_now
from inventory.tasks import sync_channel_availability
from tests.factories import ChannelLocationFactory, LocationFactory, VariantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def network(web, pos, store):
    """web <- warehouse (safety 0, #1) + lyon store (safety 2, #2); pos <- lyon (safety 0)."""
    warehouse = LocationFactory(code="wh", kind="warehouse", pickup=False)
    ChannelLocationFactory(channel=web, location=warehouse, priority=1, safety_stock=0)
    web.feeds.filter(location=store).update(safety_stock=2)
    return warehouse, store


def published(channel, variant):
    return ChannelAvailability.objects.get(channel=channel, variant=variant)


def test_channel_availability_sums_locations_less_safety_stock(web, pos, network):
    warehouse, store = network
    variant = VariantFactory()
    stock_receive(
        lines=[StockLine(variant.pk, warehouse.pk, 4), StockLine(variant.pk, store.pk, 5)],
        reference="delivery",
    )
    stock_reserve(lines=[StockLine(variant.pk, store.pk, 2)], reference="order:1")
    sync_channel_availability()
    row = published(web, variant)
    assert row.available == 4 + (5 - 2 - 2)
    assert row.locations == [
        {"location": "wh", "available": 4, "pickup": False},
        {"location": "lyon", "available": 1, "pickup": True},
    ]
    assert published(pos, variant).available == 3
    assert AvailabilityOutbox.objects.count() == 0


def test_safety_stock_never_makes_availability_negative(web, network):
    _, store = network
    variant = VariantFactory()
    stock_receive(lines=[StockLine(variant.pk, store.pk, 1)], reference="delivery")
    sync_channel_availability()
    assert published(web, variant).available == 0


def test_a_sale_at_a_store_lowers_the_web_channels_availability_on_commit(
    web, network, django_capture_on_commit_callbacks
):
    _, store = network
    variant = VariantFactory()
    with django_capture_on_commit_callbacks(execute=True):
        stock_receive(lines=[StockLine(variant.pk, store.pk, 6)], reference="delivery")
    assert published(web, variant).available == 4
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        stock_sell_now(lines=[StockLine(variant.pk, store.pk, 1)], reference="pos:1")
    assert len(callbacks) == 1  # one sync queued per transaction, whatever its lines
    assert published(web, variant).available == 3


def test_sync_is_idempotent_and_the_sweeper_finds_leftovers(web, network):
    _, store = network
    variant = VariantFactory()
    stock_receive(lines=[StockLine(variant.pk, store.pk, 6)], reference="delivery")
    # The on-commit message was never delivered: the outbox still holds the work.
    assert AvailabilityOutbox.objects.filter(variant=variant).exists()
    assert availability_sync_pending() == 1
    first = published(web, variant)
    assert availability_sync_pending() == 0  # nothing left, nothing changed
    assert published(web, variant).as_of == first.as_of
    availability_rebuild()
    assert published(web, variant).as_of == first.as_of  # same figures, not rewritten


def test_a_sync_with_no_webhook_subscriber_looks_up_no_skus(web, network):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _, store = network
    variant = VariantFactory()
    stock_receive(lines=[StockLine(variant.pk, store.pk, 6)], reference="delivery")
    with CaptureQueriesContext(connection) as queries:
        assert availability_sync_pending() == 1
    assert published(web, variant).available == 4
    statements = [q["sql"] for q in queries]
    assert any("inventory_webhooksubscription" in sql for sql in statements)
    assert not any('FROM "catalog_variant"' in sql for sql in statements)


def test_availability_api_per_sku_with_breakdown(web, network, web_client):
    warehouse, _ = network
    stocked = VariantFactory(sku="TEE-M")
    VariantFactory(sku="TEE-XL")  # known, never stocked
    stock_receive(lines=[StockLine(stocked.pk, warehouse.pk, 7)], reference="d")
    sync_channel_availability()
    body = web_client.get("/api/v1/availability/?sku=TEE-M&sku=TEE-XL").json()
    assert [(r["sku"], r["available"]) for r in body["results"]] == [("TEE-M", 7), ("TEE-XL", 0)]
    # ISO 8601 with its offset, on PostgreSQL and SQLite alike (the SKU read is SQL).
    assert datetime.fromisoformat(body["results"][0]["as_of"]).utcoffset() is not None
    assert body["results"][0]["locations"][0] == {"location": "wh", "available": 7, "pickup": False}
    assert body["results"][1]["as_of"] is None
    # A SKU asked twice is answered once; comma-separated works as repeated.
    again = web_client.get("/api/v1/availability/?sku=TEE-XL,TEE-M&sku=TEE-XL").json()
    assert [(r["sku"], r["available"]) for r in again["results"]] == [("TEE-XL", 0), ("TEE-M", 7)]


def test_availability_answer_is_what_its_declared_fields_produce(web, network, settings):
    """AvailabilitySerializer answers from the plain entry; the schema's fields must agree,
    for UTC and another time zone, a figure never published, and extra keys in the JSON."""
    from datetime import UTC

    from django.utils import timezone
    from rest_framework import serializers

    from inventory.api.serializers import AvailabilitySerializer

    entries = [
        {
            "sku": "TEE-M",
            "available": 7,
            "as_of": datetime(2026, 3, 29, 1, 30, 5, 123456, tzinfo=UTC),
            "locations": [
                {"location": "wh", "available": 7, "pickup": False},
                {"location": "lyon", "available": 0, "pickup": True, "later": "field"},
            ],
        },
        {"sku": "TEE-XL", "available": 0, "as_of": None, "locations": []},
    ]
    for zone in ("UTC", "Europe/Paris"):
        settings.TIME_ZONE = zone
        with timezone.override(zone):
            fast = AvailabilitySerializer(entries, many=True).data
            by_fields = [
                serializers.Serializer.to_representation(AvailabilitySerializer(), entry)
                for entry in entries
            ]
        assert [dict(e) for e in fast] == [
            {**e, "locations": [dict(loc) for loc in e["locations"]]} for e in by_fields
        ]
    assert fast[0]["as_of"] == "2026-03-29T03:30:05.123456+02:00"
    assert fast[0]["locations"][1] == {"location": "lyon", "available": 0, "pickup": True}


def test_availability_api_errors(web, pos, network, web_client):
    tee = VariantFactory(sku="TEE-M")
    assert web_client.get("/api/v1/availability/?sku=NOPE").json()["code"] == "unknown_sku"
    # Beside a SKU that has a figure, an unknown one is still refused.
    stock_receive(lines=[StockLine(tee.pk, network[0].pk, 1)], reference="d")
    sync_channel_availability()
    mixed = web_client.get("/api/v1/availability/?sku=TEE-M&sku=NOPE")
    assert (mixed.status_code, mixed.json()["code"]) == (400, "unknown_sku")
    response = web_client.get("/api/v1/availability/?channel=pos&sku=TEE-M")
    assert response.status_code == 403
    assert response.json()["code"] == "channel_forbidden"
    too_many = "&".join(f"sku=S{i}" for i in range(201))
    assert web_client.get(f"/api/v1/availability/?{too_many}").status_code == 400


def test_availability_list_is_paginated_at_constant_queries(
    web, network, web_client, django_assert_max_num_queries
):
    warehouse, _ = network
    for _ in range(30):
        stock_receive(lines=[StockLine(VariantFactory().pk, warehouse.pk, 3)], reference="d")
    sync_channel_availability()
    web_client.get("/api/v1/availability/")
    with django_assert_max_num_queries(6):
        body = web_client.get("/api/v1/availability/?page_size=20").json()
    assert len(body["results"]) == 20 and body["next"]


def test_changing_safety_stock_republishes_availability(
    web, network, django_capture_on_commit_callbacks
):
    _, store = network
    variant = VariantFactory()
    stock_receive(lines=[StockLine(variant.pk, store.pk, 6)], reference="d")
    sync_channel_availability()
    assert published(web, variant).available == 4
    feed = web.feeds.get(location=store)
    feed.safety_stock = 5
    with django_capture_on_commit_callbacks(execute=True):
        feed.save()
    assert published(web, variant).available == 1
    with django_capture_on_commit_callbacks(execute=True):
        feed.delete()  # the store no longer feeds the web shop
    assert published(web, variant).available == 0
    assert [loc["location"] for loc in published(web, variant).locations] == ["wh"]


def test_a_safety_stock_changed_while_the_broker_is_down_is_published_once_it_is_back(
    web, network, monkeypatch, django_capture_on_commit_callbacks
):
    """The change queued a rebuild task on commit, and that was all: with Redis down the
    message was dropped (logged), beat's sweeps drain only the outbox, and the web shop kept
    the old safety stock until someone rebuilt by hand. The change's own transaction now
    writes the outbox rows, in one statement however many variants are stocked."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from kombu.exceptions import OperationalError

    from inventory import tasks

    _, store = network
    variants = VariantFactory.create_batch(30)
    stock_receive(lines=[StockLine(v.pk, store.pk, 6) for v in variants], reference="d")
    sync_channel_availability()
    assert {published(web, v).available for v in variants} == {4}

    def broker_down(*args, **kwargs):  # what Celery raises when Redis is unreachable
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    feed = web.feeds.get(location=store)
    feed.safety_stock = 5
    with monkeypatch.context() as down:
        for task in (tasks.sync_channel_availability, tasks.rebuild_channel_availability):
            down.setattr(task, "apply_async", broker_down)
        with (
            django_capture_on_commit_callbacks(execute=True),
            CaptureQueriesContext(connection) as queries,
        ):
            feed.save()
    assert {published(web, v).available for v in variants} == {4}  # nothing ran

    sync_channel_availability()  # Redis is back: beat's sweeper, as every 5 s
    assert {published(web, v).available for v in variants} == {1}
    assert not AvailabilityOutbox.objects.exists()
    outbox_writes = [q for q in queries if "inventory_availabilityoutbox" in q["sql"]]
    assert len(outbox_writes) == 1  # one INSERT ... SELECT, not one row a variant


def test_a_channel_that_loses_its_last_feed_publishes_nothing_of_its_old_stock(
    web, pos, network, django_capture_on_commit_callbacks
):
    """The POS channel's only feed is lyon; once that goes, the channel has no location at
    all. Its published rows used to keep the old figures for good (only channels with a
    feed were recomputed): a marketplace cut off from its warehouse kept selling it."""
    _, store = network
    variant = VariantFactory()
    stock_receive(lines=[StockLine(variant.pk, store.pk, 6)], reference="d")
    sync_channel_availability()
    assert published(pos, variant).available == 6
    with django_capture_on_commit_callbacks(execute=True):
        pos.feeds.get().delete()
    row = published(pos, variant)
    assert (row.available, row.locations) == (0, [])
    assert published(web, variant).available == 4  # the web shop still has lyon
    availability_rebuild()  # again, as the sweeper might: nothing more changes
    assert published(pos, variant).available == 0


@pytest.mark.parametrize("window", [0, 50, 499])
def test_a_sync_window_within_the_contracts_second_passes_the_checks(settings, window):
    from inventory.checks import availability_sync_window

    settings.AVAILABILITY_SYNC_WINDOW_MS = window
    assert availability_sync_window() == []


@pytest.mark.parametrize("window", [-1, 500, 5000])
def test_a_sync_window_that_would_break_the_contracts_second_is_an_error(settings, window):
    from inventory.checks import availability_sync_window

    settings.AVAILABILITY_SYNC_WINDOW_MS = window
    [error] = availability_sync_window()
    assert error.id == "inventory.E001"
    assert str(window) in error.msg
