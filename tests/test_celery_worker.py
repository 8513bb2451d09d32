"""Celery end to end: a real worker thread consuming from the real broker (Redis in CI)."""

import time

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction

from catalog.models import Product
from catalog.services import product_refresh_search_later
from omnichannel.celery import app
from omnichannel.models import WorkerHeartbeat
from tests.factories import VariantFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]


@pytest.fixture
def worker(settings):
    if not settings.USING_REDIS:
        pytest.fail("needs Redis: CI has it; locally start redis-server")
    app.conf.task_always_eager = False
    with app.connection_for_write() as conn:  # messages a killed run may have left behind
        conn.default_channel.client.flushdb()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = True
        # What the worker leaves in Redis goes with it: a sync it queued for the end of its
        # window, and the debounce flag that says one is coming. Left there, the flag made
        # the next test's sales queue no sync (tests/test_faults.py, run right after).
        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_search_refresh_queued_on_commit_runs_in_the_worker(worker):
    variant = VariantFactory(sku="LIN-SH-42", product__name="Linen shirt")
    product = variant.product
    Product.objects.filter(pk=product.pk).update(search_text="")

    with transaction.atomic():
        product_refresh_search_later(product_ids=[product.pk])
        # Nothing is sent before the commit: a rolled-back import must not refresh anything.
        assert Product.objects.get(pk=product.pk).search_text == ""

    assert wait_for(lambda: "lin-sh-42" in Product.objects.get(pk=product.pk).search_text)
    assert "linen shirt" in Product.objects.get(pk=product.pk).search_text


def test_refresh_is_not_sent_when_the_transaction_rolls_back(worker):
    product = VariantFactory().product
    Product.objects.filter(pk=product.pk).update(search_text="")

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        product_refresh_search_later(product_ids=[product.pk])
        raise Abort

    # Send a marker task after it: once the marker ran, the aborted one would have too.
    marker = VariantFactory().product
    Product.objects.filter(pk=marker.pk).update(search_text="")
    product_refresh_search_later(product_ids=[marker.pk])
    assert wait_for(lambda: Product.objects.get(pk=marker.pk).search_text != "")
    assert Product.objects.get(pk=product.pk).search_text == ""


def test_heartbeat_task_through_the_broker_marks_the_worker_alive(worker, client):
    from omnichannel.tasks import record_worker_heartbeat

    record_worker_heartbeat.delay()
    assert wait_for(lambda: WorkerHeartbeat.objects.exists())
    assert client.get("/healthz").json()["worker"]["status"] == "ok"


def test_a_pos_sale_reaches_the_web_availability_through_the_worker(worker, web, pos, store):
    from inventory.models import ChannelAvailability
    from inventory.services import StockLine, stock_receive, stock_sell_now

    variant = VariantFactory()
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="delivery")

    def web_available():
        row = ChannelAvailability.objects.filter(channel=web, variant=variant).first()
        return row.available if row else None

    assert wait_for(lambda: web_available() == 5)
    stock_sell_now(lines=[StockLine(variant.pk, store.pk, 2)], reference="pos:1")
    assert wait_for(lambda: web_available() == 3)


def test_a_lost_sync_message_converges_through_the_sweeper(settings, web, store):
    from inventory.models import AvailabilityOutbox, ChannelAvailability
    from inventory.services import StockLine, stock_receive
    from inventory.tasks import sync_channel_availability

    if not settings.USING_REDIS:
        pytest.fail("needs Redis: CI has it; locally start redis-server")
    variant = VariantFactory()
    app.conf.task_always_eager = False
    try:
        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()
            # No worker runs: the sale commits and its sync message waits in Redis...
            stock_receive(lines=[StockLine(variant.pk, store.pk, 4)], reference="delivery")
            assert conn.default_channel.client.llen("celery") == 1
            conn.default_channel.client.flushdb()  # ...and is lost (broker restarted empty).
        assert AvailabilityOutbox.objects.filter(variant=variant).exists()
        assert not ChannelAvailability.objects.filter(variant=variant).exists()

        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            sync_channel_availability.delay()  # what beat sends every few seconds
            assert wait_for(
                lambda: ChannelAvailability.objects.filter(
                    channel=web, variant=variant, available=4
                ).exists()
            )
        assert not AvailabilityOutbox.objects.filter(variant=variant).exists()
    finally:
        app.conf.task_always_eager = True


def test_a_pos_order_through_the_api_lowers_web_availability_via_the_worker(
    worker, web, pos, store
):
    from decimal import Decimal

    from inventory.models import ChannelAvailability
    from inventory.services import StockLine, stock_receive
    from tests.conftest import as_client
    from tests.factories import ChannelPriceFactory, make_api_client

    variant = VariantFactory(sku="TILL-TEE")
    ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal("12.00"))
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="delivery")

    def web_available():
        row = ChannelAvailability.objects.filter(channel=web, variant=variant).first()
        return row.available if row else None

    assert wait_for(lambda: web_available() == 5)
    _, till = make_api_client(pos, store)
    response = as_client(till).post(
        "/api/v1/orders/",
        {"fulfillment": "in_store", "lines": [{"sku": "TILL-TEE", "quantity": 2}]},
        format="json",
    )
    assert response.status_code == 201
    assert wait_for(lambda: web_available() == 3)


def test_sales_during_the_sync_window_are_published_by_one_sync(worker, settings, web, store):
    """A lone sale syncs at once; the sync then holds off for AVAILABILITY_SYNC_WINDOW_MS, and
    the sales committed meanwhile queue nothing of their own: one sync at the end of the
    window publishes them all, and the one it queues in turn finds nothing and stops.

    The window's sync waits at its start until the burst is done, so the burst falls inside
    the window however slow the machine: the test used to assert the burst took under a
    second. Messages are counted as they are published, not by waiting for more to come."""
    import threading

    from celery.signals import before_task_publish, task_postrun, task_prerun

    from inventory.models import AvailabilityOutbox, ChannelAvailability
    from inventory.services import StockLine, stock_receive, stock_sell_now

    sync = "inventory.tasks.sync_channel_availability"
    settings.AVAILABILITY_SYNC_WINDOW_MS = 1500
    variants = VariantFactory.create_batch(10)
    published, started, runs = [], [], []
    burst_done = threading.Event()

    def queued(sender=None, headers=None, **kwargs):
        if sender == sync:
            published.append(headers.get("eta"))  # None: to run at once

    def starting(sender=None, **kwargs):
        if sender.name == sync:
            started.append(sender)
            if len(started) == 2:  # the window's sync: the burst is still inside its window
                burst_done.wait(30)

    def counted(sender=None, retval=None, **kwargs):
        if sender.name == sync:
            runs.append(retval)

    def web_available(variant):
        row = ChannelAvailability.objects.filter(channel=web, variant=variant).first()
        return row.available if row else None

    before_task_publish.connect(queued)
    task_prerun.connect(starting)
    task_postrun.connect(counted)
    try:
        stock_receive(lines=[StockLine(variants[0].pk, store.pk, 5)], reference="delivery")
        assert wait_for(lambda: runs == [1])
        assert web_available(variants[0]) == 5
        assert len(published) == 2 and published[0] is None  # at once, no window
        assert published[1] is not None  # the next one for the end of the window
        for n, variant in enumerate(variants):
            stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference=f"d{n}")
        stock_sell_now(lines=[StockLine(variants[0].pk, store.pk, 2)], reference="pos:1")
        assert len(published) == 2  # nothing was queued by the burst: the window's sync is
        assert runs == [1]  # pending
        burst_done.set()
        assert wait_for(lambda: len(runs) >= 3)
        assert runs == [1, 11, 0]  # ten receipts and the sale in one sync, then nothing
        assert not AvailabilityOutbox.objects.exists()
        assert web_available(variants[0]) == 6
        assert all(web_available(v) == 3 for v in variants[1:])
        assert len(published) == 3  # the empty sync queued none: the chain ended
    finally:
        burst_done.set()
        before_task_publish.disconnect(queued)
        task_prerun.disconnect(starting)
        task_postrun.disconnect(counted)


@pytest.mark.django_db(transaction=False)
def test_an_eager_task_inside_a_transaction_leaves_the_callers_connection_alone():
    """Around a task the worker closes an old or broken connection as Django does around a
    request (omnichannel/celery.py). An eager task runs inside its caller's transaction, on
    the caller's connection: closing it there would abort the caller's work."""
    from django.db import connection

    from omnichannel.tasks import record_worker_heartbeat

    with transaction.atomic():
        WorkerHeartbeat.objects.create(hostname="before", seen_at="2026-01-01T00:00:00Z")
        record_worker_heartbeat.apply()
        assert connection.in_atomic_block and not connection.needs_rollback
        assert WorkerHeartbeat.objects.count() == 2
    assert WorkerHeartbeat.objects.count() == 2
