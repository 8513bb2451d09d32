"""Faults with the real services: Redis stopped, a worker killed mid-batch, PostgreSQL
dropping a connection mid-order. Nothing is mocked: Redis is a private redis-server this test
starts and kills, the worker, beat and the web server are real processes, and PostgreSQL
itself aborts the transaction (pg_terminate_backend)."""

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import psycopg2
import pytest
from celery import Celery
from django.db import connection
from django.test import Client

import orders.services
from customers.models import Member, PointsEntry
from inventory import availability
from inventory.models import (
    AvailabilityOutbox,
    ChannelAvailability,
    StockLevel,
    StockMovement,
    WebhookDelivery,
    WebhookSubscription,
)
from inventory.services import StockLine, stock_receive
from omnichannel.models import ChannelLocation, IdempotencyRecord, WorkerHeartbeat
from orders.models import Allocation, Order, OrderLine, Payment
from tests.concurrency import require_postgres
from tests.conftest import as_client
from tests.factories import ChannelPriceFactory, VariantFactory, make_api_client
from tests.inventory_helpers import assert_ledger_matches_levels
from tests.test_webhooks import Subscriber

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

ROOT = Path(__file__).resolve().parent.parent


# --- the real services --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def database_url() -> str:
    """The test database, for processes outside this one (it is committed data:
    transaction=True tests)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "")
    if s["PASSWORD"]:
        auth += ":" + quote(s["PASSWORD"])
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def other_connection():
    """A second, independent PostgreSQL session (autocommit)."""
    conn = psycopg2.connect(**connection.get_connection_params())
    conn.autocommit = True
    return conn


class RedisServer:
    """A private redis-server on its own port, without persistence: killing it loses every
    queued message and flag, as a crashed or restarted broker does."""

    def __init__(self, workdir: Path) -> None:
        if shutil.which("redis-server") is None:
            pytest.fail("these tests start their own redis-server: install redis-server")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.process = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        with open(self.workdir / f"redis-{self.port}.log", "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        assert wait_for(self.answers, 10), "redis-server did not start"

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.process = None


class Services:
    """The web server, worker and beat as real processes against the test database and a
    Redis of the test's own (see the Procfile), each with its log under tmp_path."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        self.workdir = workdir
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "omnichannel.settings",
            "DATABASE_URL": database_url(),
            "REDIS_URL": redis_url,
            "VAR_DIR": str(workdir),
            "DEBUG": "false",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "WEBHOOK_ALLOW_PRIVATE_URLS": "true",  # the tests' subscribers are on 127.0.0.1
        }
        self.processes: dict[str, subprocess.Popen] = {}
        self.web_url = None

    def start(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.workdir / f"{name}.log", "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill takes its children
            )
        self.processes[name] = process
        return process

    def worker(self, name: str = "worker") -> subprocess.Popen:
        return self.start(
            name,
            "celery",
            "-A",
            "omnichannel",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--hostname",
            f"{name}@faults",
        )

    def beat(self) -> subprocess.Popen:
        schedule = str(self.workdir / "celerybeat-schedule")
        return self.start(
            "beat", "celery", "-A", "omnichannel", "beat", "--schedule", schedule, "-l", "INFO"
        )

    def web(self) -> str:
        port = free_port()
        self.start(
            "web",
            "gunicorn",
            "omnichannel.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            "2",
        )
        self.web_url = f"http://127.0.0.1:{port}"

        def up():
            try:
                return urllib.request.urlopen(self.web_url + "/healthz", timeout=2).status == 200
            except OSError:
                return False

        assert wait_for(up, 30), self.logs()
        return self.web_url

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name)

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.workdir.glob("*.log"))
        )


def backends_of_others() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def services(transactional_db, tmp_path, redis_server):
    require_postgres()
    running = Services(tmp_path, redis_server.url)
    yield running
    running.stop_all()
    # The test database is flushed, and dropped at the end of the run: the killed processes'
    # sessions must be gone first.
    assert wait_for(lambda: not backends_of_others(), 20), backends_of_others()


def broker(url: str) -> Celery:
    """A Celery client of the test's own Redis, to send what beat would send."""
    return Celery("faults-client", broker=url, set_as_current=False)


def post_json(url: str, token: str, body: dict, key: str) -> tuple[int, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key,
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def channel_truth(channel, variant) -> int:
    """The contract's rule, from the stock levels: sum over the channel's locations of
    max(0, on_hand - reserved - safety_stock)."""
    total = 0
    for feed in ChannelLocation.objects.filter(channel=channel):
        level = StockLevel.objects.filter(variant=variant, location_id=feed.location_id).first()
        if level is not None:
            total += max(0, level.on_hand - level.reserved - feed.safety_stock)
    return total


def published(channel, variant) -> int | None:
    row = ChannelAvailability.objects.filter(channel=channel, variant=variant).first()
    return row.available if row else None


# --- 1. Redis stopped while orders are placed ---------------------------------------------


def test_orders_succeed_while_redis_is_down_and_availability_converges_when_it_returns(
    services, redis_server, web, store
):
    variant = VariantFactory(sku="FAULT-TEE")
    ChannelPriceFactory(variant=variant, channel=web, amount=Decimal("10.00"))
    stock_receive(lines=[StockLine(variant.pk, store.pk, 40)], reference="delivery")
    assert published(web, variant) == 40
    _, token = make_api_client(web, name="storefront")
    orders_url = services.web() + "/api/v1/orders/"
    services.worker()
    services.beat()
    order = {"fulfillment": "ship", "lines": [{"sku": "FAULT-TEE", "quantity": 1}]}

    for n in range(3):  # Redis up: the worker publishes each sale
        status, body = post_json(orders_url, token, order, key=f"up-{n}")
        assert status == 201, body
    assert wait_for(lambda: published(web, variant) == 37, 30), services.logs()
    # And the sync chain idle: a sync that published queues one more for the end of its
    # window, held by the worker; run after the kill, it took a down-sale's row (seen once).
    import redis

    flag = redis.Redis.from_url(redis_server.url)
    assert wait_for(lambda: not flag.exists(availability.SYNC_PENDING_KEY), 30)
    flag.close()

    redis_server.kill()
    timings = []
    beat_log = services.workdir / "beat.log"
    for n in range(7):
        if n == 5:  # Redis stays down past beat's sweep: beat cannot send it either
            assert wait_for(lambda: "beat: Connection error" in beat_log.read_text(), 30)
        started = time.monotonic()
        status, body = post_json(orders_url, token, order, key=f"down-{n}")
        timings.append(round(time.monotonic() - started, 3))
        assert status == 201, (body, services.logs())
    print("order times while Redis is down (s):", timings)
    assert Order.objects.count() == 10
    assert channel_truth(web, variant) == 30
    # The sales are in the outbox, written in their own transactions; nothing published them.
    assert AvailabilityOutbox.objects.filter(variant=variant).count() == 7
    assert published(web, variant) == 37
    health = json.loads(urllib.request.urlopen(services.web_url + "/healthz", timeout=10).read())
    assert (health["status"], health["database"], health["broker"]) == ("ok", "ok", "down")
    # Failing soft, not silently: the web server logged the dropped kicks, and did not try
    # the broker on every sale (once per process and pause, not once per order).
    dropped = (services.workdir / "web.log").read_text().count("availability sync not queued")
    assert 1 <= dropped < 7, services.logs()

    redis_server.start()  # same port, empty: every queued message and flag is gone
    # Nobody calls anything: the worker reconnects, beat's sweeper drains the outbox.
    assert wait_for(
        lambda: (
            published(web, variant) == channel_truth(web, variant) == 30
            and not AvailabilityOutbox.objects.filter(variant=variant).exists()
        ),
        90,
        step=0.5,
    ), services.logs()

    status, body = post_json(orders_url, token, order, key="after")
    assert status == 201, body
    assert wait_for(lambda: published(web, variant) == 29, 30), services.logs()
    assert Order.objects.count() == 11
    assert_ledger_matches_levels()


def test_the_worker_survives_redis_dying_while_it_holds_a_message(
    services, redis_server, web, store
):
    """A worker nearly always holds a message under load: a task running (acknowledged late)
    or one waiting for its countdown. Redis dying then made kombu's close of the channel
    raise AttributeError while handing the message back, and the worker exited with
    'Unrecoverable error'. It must reconnect when Redis returns and go on working."""
    variant = VariantFactory(sku="FAULT-HELD")
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="delivery")
    worker = services.worker()
    client = broker(redis_server.url)
    worker_log = services.workdir / "worker.log"
    assert wait_for(lambda: "ready." in worker_log.read_text(), 30), services.logs()
    # Held by the worker, unacknowledged, until its countdown ends (well after the restart).
    client.send_task("omnichannel.tasks.record_worker_heartbeat", countdown=600)
    assert wait_for(lambda: "] received" in worker_log.read_text(), 30), services.logs()

    redis_server.kill()
    assert wait_for(lambda: "Connection to broker lost" in worker_log.read_text(), 30)
    time.sleep(1)
    redis_server.start()
    assert wait_for(lambda: worker_log.read_text().count("Connected to") >= 2, 60), services.logs()
    assert worker.poll() is None, services.logs()
    assert "Unrecoverable error" not in worker_log.read_text(), services.logs()

    # And it works: a stock change queued after the restart is published by it.
    stock_receive(lines=[StockLine(variant.pk, store.pk, 2)], reference="after the restart")
    broker(redis_server.url).send_task("inventory.tasks.sync_channel_availability")
    assert wait_for(lambda: published(web, variant) == 7, 30), services.logs()
    assert worker.poll() is None


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_a_worker_survives_redis_restarting_while_a_sync_runs(
    services, redis_server, web, store, monkeypatch, pool
):
    """The worker as the Procfile and docker-compose run it (prefork): a sync running in a
    pool process when Redis went away finished during the outage; once Redis was back the
    consumer acknowledged it on the channel closed meanwhile, and the worker exited
    ("Unrecoverable error: AttributeError: 'NoneType' object has no attribute 'client'"):
    nothing drained the outbox until someone restarted it (found with real processes by the
    fault review; the tests above run --pool=solo). Held in its transaction by an advisory
    lock, so the sync is surely running when Redis dies."""
    monkeypatch.setattr(availability, "sync_soon", lambda: None)  # the test sends the syncs
    variant = VariantFactory(sku="PREFORK-TEE")
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="delivery")
    worker = services.start(
        "worker",
        *("celery", "-A", "omnichannel", "worker", "--loglevel=INFO", "--concurrency=2"),
        *(f"--pool={pool}", "--hostname", f"{pool}@faults"),
    )
    log = services.workdir / "worker.log"
    assert wait_for(lambda: "ready." in log.read_text(), 60), services.logs()

    holder = other_connection()
    with holder.cursor() as cursor:  # the sync will wait inside its transaction
        cursor.execute(
            "SELECT pg_advisory_lock(%s, %s)", [availability.ADVISORY_NAMESPACE, variant.pk]
        )
    broker(redis_server.url).send_task("inventory.tasks.sync_channel_availability")

    def sync_waiting():
        with holder.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objid = %s",
                [variant.pk],
            )
            return cursor.fetchone() is not None

    assert wait_for(sync_waiting, 30), services.logs()
    redis_server.kill()
    if pool == "prefork":  # solo: the consumer is busy running the task, it notices later
        assert wait_for(lambda: "Connection to broker lost" in log.read_text(), 30)
    holder.close()  # the sync finishes while Redis is down
    assert wait_for(lambda: "succeeded in" in log.read_text(), 30), services.logs()
    redis_server.start()
    assert wait_for(lambda: log.read_text().count("Connected to") >= 2, 60), services.logs()
    # and it still works: a change made now is published by it
    stock_receive(lines=[StockLine(variant.pk, store.pk, 2)], reference="after the restart")
    broker(redis_server.url).send_task("inventory.tasks.sync_channel_availability")
    assert wait_for(lambda: published(web, variant) == channel_truth(web, variant) == 7, 30), (
        services.logs()
    )
    assert "Unrecoverable error" not in log.read_text(), services.logs()
    assert worker.poll() is None, "the worker exited"
    assert not AvailabilityOutbox.objects.exists()


# --- 2. A worker killed in the middle of a sync -------------------------------------------


def test_a_worker_killed_mid_sync_loses_nothing_and_publishes_nothing_twice(
    services, redis_server, web, pos, store, monkeypatch
):
    """The task consumes the outbox in batches of 1000 rows, one transaction each (claim,
    recompute, record webhook deliveries, delete the rows). The worker is killed while the
    third batch is in flight: the first two are applied, the third is not, and a new worker
    applies it exactly once."""
    from inventory.tasks import BATCH

    # Every kick is lost (as with a broker restarted empty): the outbox alone holds the work.
    monkeypatch.setattr(availability, "sync_soon", lambda: None)
    groups = [VariantFactory.create_batch(10) for _ in range(3)]
    receipts = [BATCH // 10, BATCH // 10, 40]  # 1000 outbox rows, 1000 rows, 400 rows
    for group, count in zip(groups, receipts, strict=True):
        for n in range(count):
            stock_receive(
                lines=[StockLine(v.pk, store.pk, 1 + (n + i) % 3) for i, v in enumerate(group)],
                reference=f"delivery-{n}",
            )
    first, second, third = ([v.pk for v in group] for group in groups)
    assert AvailabilityOutbox.objects.count() == 2400
    third_rows = set(
        AvailabilityOutbox.objects.filter(variant_id__in=third).values_list("id", flat=True)
    )
    assert not ChannelAvailability.objects.exists()
    blocked = max(third)

    with Subscriber([]) as subscriber:
        WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        holder = other_connection()
        try:
            # Hold the lock the recompute takes per variant: the worker stops inside the third
            # batch's transaction, after the first two committed.
            with holder.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_advisory_lock(%s, %s)", [availability.ADVISORY_NAMESPACE, blocked]
                )
            services.worker("worker-1")
            broker(redis_server.url).send_task("inventory.tasks.sync_channel_availability")

            def waiting_backend():
                with holder.cursor() as cursor:
                    cursor.execute(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                        "AND classid = %s AND objid = %s",
                        [availability.ADVISORY_NAMESPACE, blocked],
                    )
                    row = cursor.fetchone()
                return row[0] if row else None

            assert wait_for(lambda: waiting_backend() is not None, 60), services.logs()
            victim = waiting_backend()
            outbox = AvailabilityOutbox.objects
            assert not outbox.filter(variant_id__in=first + second).exists()
            assert set(outbox.values_list("id", flat=True)) == third_rows
            assert WebhookDelivery.objects.count() == 2  # one per committed batch

            services.kill("worker-1")  # SIGKILL, in the middle of the transaction
        finally:
            holder.close()  # releases the lock; PostgreSQL aborts the dead worker's work
        assert wait_for(lambda: victim not in backends_of_others(), 20)

        # Nothing of the third batch was applied, nothing of it is lost.
        assert set(AvailabilityOutbox.objects.values_list("id", flat=True)) == third_rows
        assert not ChannelAvailability.objects.filter(variant_id__in=third).exists()
        assert WebhookDelivery.objects.count() == 2

        services.worker("worker-2")
        broker(redis_server.url).send_task("inventory.tasks.sync_channel_availability")
        assert wait_for(lambda: not AvailabilityOutbox.objects.exists(), 60), services.logs()
        assert wait_for(
            lambda: (
                WebhookDelivery.objects.filter(status="delivered").count() == 3
                and len(subscriber.received) == 3
            ),
            60,
        ), services.logs()
        time.sleep(1)  # a duplicate send would arrive now
        received = [headers["X-Delivery-Id"] for headers, _ in subscriber.received]

    # The new worker's run consumed exactly the 400 rows of the interrupted batch; the sync it
    # queued for the end of the window (AVAILABILITY_SYNC_WINDOW_MS) found nothing.
    consumed = re.findall(
        r"sync_channel_availability\[[^]]+\] succeeded in [\d.]+s: (\d+)",
        (services.workdir / "worker-2.log").read_text(),
    )
    assert consumed == ["400", "0"], services.logs()
    for channel in (web, pos):
        for variant_id in first + second + third:
            variant = VariantFactory._meta.model.objects.get(pk=variant_id)
            assert published(channel, variant) == channel_truth(channel, variant)
    assert published(web, groups[0][0]) == StockLevel.objects.get(variant=groups[0][0]).on_hand
    deliveries = list(WebhookDelivery.objects.order_by("id"))
    assert [d.attempts for d in deliveries] == [1, 1, 1]
    assert sorted(received) == sorted(str(d.pk) for d in deliveries)  # each sent once
    skus = [change["sku"] for d in deliveries for change in d.payload["changes"]]
    assert sorted(skus) == sorted(v.sku for group in groups for v in group)  # each change once


def test_the_worker_keeps_its_database_session_across_tasks_and_replaces_a_dropped_one(
    services, redis_server
):
    """Celery's Django fix-up closes the database connection around every task unless
    CELERY_DB_REUSE_MAX is set: a new PostgreSQL session (a backend forked, its caches cold)
    for every availability sync. With it set and Django's request rules around each task
    (omnichannel/celery.py), the worker keeps one session, as a web thread does; one that
    PostgreSQL dropped between tasks is replaced before the next task uses it (the health
    check), and that task runs."""
    services.worker()
    client = broker(redis_server.url)

    def seen_at():
        return WorkerHeartbeat.objects.values_list("seen_at", flat=True).first()

    def heartbeat():
        before = seen_at()
        client.send_task("omnichannel.tasks.record_worker_heartbeat")
        assert wait_for(lambda: seen_at() != before, 30), services.logs()

    heartbeat()
    sessions = backends_of_others()
    assert len(sessions) == 1, sessions  # the worker's: no web server or beat here
    for _ in range(10):
        heartbeat()
        assert backends_of_others() == sessions

    with other_connection() as killer, killer.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s, 5000)", sessions)
        assert cursor.fetchone() == (True,)
    killer.close()
    assert wait_for(lambda: not backends_of_others(), 20)
    heartbeat()
    replaced = backends_of_others()
    assert len(replaced) == 1 and replaced != sessions, (sessions, replaced)
    assert "Traceback" not in (services.workdir / "worker.log").read_text(), services.logs()


# --- 3. PostgreSQL drops the connection in the middle of an order ---------------------------


@pytest.fixture
def till(pos, store):
    variant = VariantFactory(sku="DROP-TEE")
    ChannelPriceFactory(variant=variant, channel=pos, amount=Decimal("12.00"))
    stock_receive(lines=[StockLine(variant.pk, store.pk, 5)], reference="delivery")
    _, token = make_api_client(pos, store, name="till")
    return variant, as_client(token)


def drop_connection_after(monkeypatch, name: str) -> list:
    """Wrap `orders.services.<name>`: let it write (inside the order's transaction), then have
    PostgreSQL terminate this session from another one, as a failover or a cut network
    would. The order's next statement fails; the first call only."""
    original = getattr(orders.services, name)
    seen = []

    def wrapper(*args, **kwargs):
        result = original(*args, **kwargs)
        if not seen:
            seen.append(Order.objects.count())  # the half-written order, seen from inside
            pid = connection.connection.get_backend_pid()
            with other_connection() as killer, killer.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
                assert cursor.fetchone() == (True,)
            killer.close()
        return result

    monkeypatch.setattr(orders.services, name, wrapper)
    return seen


def assert_no_trace_of_an_order(variant, store) -> None:
    assert not Order.objects.exists()
    assert not OrderLine.objects.exists()
    assert not Allocation.objects.exists()
    assert not Payment.objects.exists()
    assert not PointsEntry.objects.exists()
    assert not IdempotencyRecord.objects.exists()
    assert not AvailabilityOutbox.objects.exists()
    assert list(StockMovement.objects.values_list("reason", flat=True)) == ["receipt"]
    level = StockLevel.objects.get(variant=variant, location=store)
    assert (level.on_hand, level.reserved) == (5, 0)
    assert_ledger_matches_levels()


SERVICE_UNAVAILABLE = {
    "code": "service_unavailable",
    "detail": "The database did not answer. Retry in a moment with the same "
    "Idempotency-Key: the request is carried out once.",
    "retryable": True,
}


@pytest.mark.parametrize(
    ("fulfillment", "written_before_the_drop"),
    [
        # the order row, its reservation and ledger row and the outbox row are written
        ("pickup", "stock_reserve"),
        # also its lines, allocations, payment, the sale's ledger row; the member is created
        ("in_store", "member_seen"),
    ],
)
def test_connection_dropped_mid_order_is_a_retryable_503_and_the_retry_places_it_once(
    till, store, monkeypatch, caplog, fulfillment, written_before_the_drop
):
    require_postgres()
    variant, client = till
    caplog.set_level(logging.WARNING, logger="omnichannel.api.exceptions")
    seen = drop_connection_after(monkeypatch, written_before_the_drop)
    body = {
        "fulfillment": fulfillment,
        "lines": [{"sku": "DROP-TEE", "quantity": 2}],
        "payments": [{"method": "card", "amount": "24.00"}],
        "member": {"email": "ada@example.com"},
    }
    if fulfillment == "pickup":
        body["pickup_location"] = store.code

    def place():
        return client.post("/api/v1/orders/", body, format="json", HTTP_IDEMPOTENCY_KEY="k-1")

    response = place()
    assert seen == [1], "the order was being written when the connection dropped"
    assert response.status_code == 503, response.content
    assert response.json() == SERVICE_UNAVAILABLE
    assert response["Retry-After"] == "2"
    assert "database unavailable during POST /api/v1/orders/" in caplog.text
    assert_no_trace_of_an_order(variant, store)
    assert not Member.objects.exists()  # created in the same transaction, gone with it

    retried = place()
    assert retried.status_code == 201, retried.content
    replayed = place()
    assert replayed.status_code == 201
    assert replayed["Idempotent-Replayed"] == "true"
    assert replayed.json() == retried.json()
    order = Order.objects.get()
    assert order.lines.get().quantity == 2
    level = StockLevel.objects.get(variant=variant, location=store)
    expected = (5, 2) if fulfillment == "pickup" else (3, 0)
    assert (level.on_hand, level.reserved) == expected
    assert Member.objects.count() == 1
    assert_ledger_matches_levels()


def test_connection_dropped_mid_order_without_idempotency_key_is_a_503_too(
    till, store, monkeypatch
):
    require_postgres()
    variant, client = till
    drop_connection_after(monkeypatch, "stock_sell_now")
    body = {"fulfillment": "in_store", "lines": [{"sku": "DROP-TEE", "quantity": 1}]}

    response = client.post("/api/v1/orders/", body, format="json")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert_no_trace_of_an_order(variant, store)
    assert client.post("/api/v1/orders/", body, format="json").status_code == 201


def test_api_and_healthz_answer_503_while_postgres_is_unreachable(till):
    """Nothing listens on the port: PostgreSQL down, or not yet back from a restart."""
    _, client = till
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = str(free_port())
    try:
        listed = client.get("/api/v1/orders/")
        placed = client.post(
            "/api/v1/orders/",
            {"fulfillment": "in_store", "lines": [{"sku": "DROP-TEE", "quantity": 1}]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="k-down",
        )
        health = Client().get("/healthz")
    finally:
        connection.close()
        settings_dict["PORT"] = real_port
    for response in (listed, placed):
        assert response.status_code == 503
        assert response.json() == SERVICE_UNAVAILABLE
        assert response["Retry-After"] == "2"
    assert health.status_code == 503
    assert health.json()["database"] == "down"
    assert not Order.objects.exists()


def test_schema_documents_the_retryable_503(client):
    schema = client.get("/api/schema/?format=json").json()
    answer = schema["paths"]["/api/v1/orders/"]["get"]["responses"]["503"]
    ref = answer["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/ServiceUnavailable"
    fields = schema["components"]["schemas"]["ServiceUnavailable"]["properties"]
    assert set(fields) == {"code", "detail", "retryable"}
