"""Availability webhooks: signed, retried with back-off, every attempt logged."""

import contextlib
import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connections
from django.utils import timezone

from inventory.models import WebhookDelivery, WebhookSubscription
from inventory.services import StockLine, stock_receive
from inventory.tasks import sweep_webhooks, sync_channel_availability
from inventory.webhooks import MAX_ATTEMPTS, backoff, webhook_attempt
from tests.factories import VariantFactory

pytestmark = pytest.mark.django_db


class Subscriber:
    """A real HTTP endpoint on 127.0.0.1 answering with the given status codes in turn.
    With `hold_first`, the first request is answered only once `release` is set (`holding`
    says it came in): a slow subscriber, as long as the test likes."""

    def __init__(self, statuses, *, hold_first=False):
        self.statuses = list(statuses)
        self.received = []
        self.holding, self.release = threading.Event(), threading.Event()
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with lock:
                    outer.received.append((dict(self.headers), body))
                    held = hold_first and len(outer.received) == 1
                if held:
                    outer.holding.set()
                    outer.release.wait(10)
                code = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(code)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def make_due(delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_availability_change_is_posted_signed_to_the_subscriber(
    web, store, django_capture_on_commit_callbacks
):
    variant = VariantFactory(sku="TEE-M")
    with Subscriber([200]) as subscriber:
        subscription = WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        with django_capture_on_commit_callbacks(execute=True):
            stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference="delivery")
        with django_capture_on_commit_callbacks(execute=True):
            sync_channel_availability()
    [(headers, body)] = subscriber.received
    # The contract's words: the HMAC-SHA256 of the body, as a subscriber computes it.
    expected = hmac.new(subscription.secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Signature"], expected)
    payload = json.loads(body)
    assert payload["event"] == "availability.changed"
    assert payload["channel"] == "web"
    assert [(c["sku"], c["available"]) for c in payload["changes"]] == [("TEE-M", 3)]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert list(delivery.log.values_list("status_code", flat=True)) == [200]


def test_a_failing_endpoint_is_retried_with_back_off_and_every_attempt_logged(web, store):
    variant = VariantFactory()
    with Subscriber([500, 503]) as subscriber:
        WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference="delivery")
        sync_channel_availability()
        delivery = WebhookDelivery.objects.get()

        first = webhook_attempt(delivery_id=delivery.pk)
        assert (first.status, first.attempts) == ("pending", 1)
        assert first.next_attempt_at > timezone.now() + backoff(1) - timedelta(seconds=2)
        assert webhook_attempt(delivery_id=delivery.pk) is None  # not due yet: no attempt

        make_due(delivery)
        second = webhook_attempt(delivery_id=delivery.pk)
        assert (second.status, second.attempts) == ("pending", 2)
        assert second.next_attempt_at - timezone.now() > backoff(1)  # the wait grows

        make_due(delivery)
        assert sweep_webhooks() == 1  # beat's sweeper sends what is due (eager in tests)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert list(delivery.log.values_list("status_code", flat=True)) == [500, 503, 200]
    assert len(subscriber.received) == 3
    ids = {headers["X-Delivery-Id"] for headers, _ in subscriber.received}
    assert ids == {str(delivery.pk)}


def test_an_unreachable_endpoint_gives_up_after_the_last_attempt(web, store):
    with Subscriber([]) as gone:
        url = gone.url  # a port that nothing listens on once the server is closed
    WebhookSubscription.objects.create(channel=web, url=url)
    stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 1)], reference="d")
    sync_channel_availability()
    delivery = WebhookDelivery.objects.get()
    for _ in range(MAX_ATTEMPTS):
        make_due(delivery)
        webhook_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    assert all(attempt.error for attempt in delivery.log.all())
    make_due(delivery)
    assert webhook_attempt(delivery_id=delivery.pk) is None


def test_no_subscriber_no_delivery_and_inactive_ones_are_skipped(web, store):
    WebhookSubscription.objects.create(channel=web, url="http://127.0.0.1:9/x", is_active=False)
    stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 1)], reference="d")
    sync_channel_availability()
    assert WebhookDelivery.objects.count() == 0


def test_a_channels_integration_registers_its_webhook_through_the_api(
    web, pos, store, django_capture_on_commit_callbacks, settings
):
    """The contract's subscribers register their URL themselves: a client of the channel
    (without a store) gets the secret that signs the deliveries, once per URL; listing shows
    its channel's subscriptions only, without the secret; DELETE stops the deliveries. A
    till, another channel's client and a URL that is not http(s) are refused."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True  # the test's subscriber listens on 127.0.0.1
    _, storefront_token = make_api_client(web, name="storefront")
    _, till_token = make_api_client(pos, store, name="till")
    storefront, till = as_client(storefront_token), as_client(till_token)
    WebhookSubscription.objects.create(channel=pos, url="https://pos.example/hook")
    variant = VariantFactory(sku="TEE-M")

    with Subscriber([200, 200]) as subscriber:
        made = storefront.post("/api/v1/webhooks/", {"url": subscriber.url}, format="json")
        assert made.status_code == 201, made.json()
        hook = made.json()
        assert (hook["channel"], hook["url"], hook["is_active"]) == ("web", subscriber.url, True)
        again = storefront.post("/api/v1/webhooks/", {"url": subscriber.url}, format="json")
        assert again.status_code == 200 and again.json()["id"] == hook["id"]  # not a second one
        assert "secret" not in again.json()  # given once, to whoever registered it
        listed = storefront.get("/api/v1/webhooks/").json()["results"]
        assert [(h["id"], "secret" in h) for h in listed] == [(hook["id"], False)]

        with django_capture_on_commit_callbacks(execute=True):
            stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference="delivery")
        with django_capture_on_commit_callbacks(execute=True):
            sync_channel_availability()
        [(headers, body)] = subscriber.received
        expected = hmac.new(hook["secret"].encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Signature"], expected)

        assert storefront.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204
        assert storefront.get("/api/v1/webhooks/").json()["results"] == []
        with django_capture_on_commit_callbacks(execute=True):
            stock_receive(lines=[StockLine(variant.pk, store.pk, 1)], reference="delivery")
        with django_capture_on_commit_callbacks(execute=True):
            sync_channel_availability()
        assert len(subscriber.received) == 1  # nothing after the unsubscribe

    for client, body, status, code in (
        (till, {"url": "https://till.example/hook"}, 403, "location_forbidden"),
        (storefront, {"url": "https://x.example/", "channel": "pos"}, 403, "channel_forbidden"),
        (storefront, {"url": "ftp://x.example/"}, 400, "invalid"),
        (storefront, {"url": "not a url"}, 400, "invalid"),
    ):
        refused = client.post("/api/v1/webhooks/", body, format="json")
        assert (refused.status_code, refused.json()["code"]) == (status, code), body
    pos_hook = WebhookSubscription.objects.get(channel=pos)
    assert storefront.delete(f"/api/v1/webhooks/{pos_hook.pk}/").status_code == 404
    assert WebhookSubscription.objects.get(pk=pos_hook.pk).is_active


def test_the_webhook_list_runs_a_constant_number_of_queries(
    web, pos, django_assert_max_num_queries
):
    """Each subscription names its channel: read with the page, not per subscription, for
    staff (every channel's) and for a channel's integration (its own)."""
    from django.contrib.auth.models import Group
    from rest_framework.test import APIClient

    from omnichannel.roles import MANAGER
    from tests.conftest import as_client
    from tests.factories import make_api_client, make_staff

    def subscribe(count):
        for _ in range(count):
            n = WebhookSubscription.objects.count()
            for channel in (web, pos):
                WebhookSubscription.objects.create(
                    channel=channel, url=f"https://hooks.example.com/{channel.code}/{n}"
                )

    manager = make_staff("boss")
    manager.groups.add(Group.objects.get(name=MANAGER))
    staff = APIClient()
    staff.force_login(manager)
    storefront = as_client(make_api_client(web, name="storefront")[1])
    lists = [(staff, 2 * 16), (storefront, 16)]
    subscribe(1)
    baselines = []
    for api, _ in lists:
        api.get("/api/v1/webhooks/")
        with django_assert_max_num_queries(20) as few:
            api.get("/api/v1/webhooks/")
        baselines.append(len(few.captured_queries))
    subscribe(15)
    for (api, expected), baseline in zip(lists, baselines, strict=True):
        with django_assert_max_num_queries(baseline):
            assert len(api.get("/api/v1/webhooks/").json()["results"]) == expected


def test_webhook_urls_on_private_or_local_addresses_are_refused(web, settings):
    """The worker POSTs to what a client registers: not to the database, Redis or a cloud's
    metadata address on its own network."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    _, token = make_api_client(web, name="storefront")
    storefront = as_client(token)
    for url in (
        "http://127.0.0.1:5432/",
        "http://localhost:6379/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/admin/",
        "http://[::1]/",
    ):
        refused = storefront.post("/api/v1/webhooks/", {"url": url}, format="json")
        assert refused.status_code == 400, url
        assert refused.json()["code"] == "invalid" and "url" in refused.json()["errors"]
    assert not WebhookSubscription.objects.exists()
    public = storefront.post(
        "/api/v1/webhooks/", {"url": "https://93.184.215.14/hook"}, format="json"
    )
    assert public.status_code == 201


def test_a_removed_webhook_gets_nothing_more_and_comes_back_with_a_new_secret(
    web, store, django_capture_on_commit_callbacks, settings
):
    """A delivery waiting for its retry was still sent after the DELETE; registering the URL
    again starts over with a new secret (the old one went with the removal)."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = True
    _, token = make_api_client(web, name="storefront")
    storefront = as_client(token)
    variant = VariantFactory(sku="TEE-M")
    with Subscriber([500, 200]) as subscriber:
        hook = storefront.post("/api/v1/webhooks/", {"url": subscriber.url}, format="json").json()
        with django_capture_on_commit_callbacks(execute=True):
            stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference="delivery")
        with django_capture_on_commit_callbacks(execute=True):
            sync_channel_availability()
        [delivery] = WebhookDelivery.objects.all()
        assert (delivery.status, len(subscriber.received)) == ("pending", 1)  # 500: retry due
        assert storefront.delete(f"/api/v1/webhooks/{hook['id']}/").status_code == 204
        make_due(delivery)
        sweep_webhooks()
        webhook_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, len(subscriber.received)) == ("failed", 1)
        back = storefront.post("/api/v1/webhooks/", {"url": subscriber.url}, format="json")
        assert back.status_code == 201 and back.json()["id"] == hook["id"]
        assert back.json()["secret"] != hook["secret"]


def test_a_delivery_never_follows_a_redirect_nor_goes_to_a_private_address(
    web, store, django_capture_on_commit_callbacks, settings
):
    """A subscriber's redirect is its answer (urllib turned the POST into a GET to wherever
    it pointed), and the address is checked again at each attempt: a name may resolve
    elsewhere since it was registered, or the subscription was made in the admin."""
    variant = VariantFactory(sku="TEE-M")
    followed = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_address[1]}/x")
            self.end_headers()

        def do_GET(self):  # where the redirect points
            followed.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        WebhookSubscription.objects.create(channel=web, url=url)
        with django_capture_on_commit_callbacks(execute=True):
            stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference="delivery")
        with django_capture_on_commit_callbacks(execute=True):
            sync_channel_availability()
        [delivery] = WebhookDelivery.objects.all()
        assert delivery.status == "pending"  # a 302 is not delivered: retried
        assert [a.status_code for a in delivery.log.all()] == [302]
        assert followed == []

        settings.WEBHOOK_ALLOW_PRIVATE_URLS = False  # as in production
        make_due(delivery)
        webhook_attempt(delivery_id=delivery.pk)
        last = delivery.log.order_by("-id").first()
        assert last.status_code is None and "private or local address" in last.error
    finally:
        server.shutdown()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_registrations_of_one_url_at_the_same_moment_make_one_subscription(
    web, monkeypatch, settings
):
    """Both found no subscription and both created one: every change went out twice."""
    from inventory import webhooks
    from tests.concurrency import require_postgres, run_in_threads
    from tests.conftest import as_client
    from tests.factories import make_api_client

    require_postgres()
    _, token = make_api_client(web, name="storefront")
    both_checked = threading.Barrier(2)
    monkeypatch.setattr(webhooks, "_refuse_internal", lambda url: both_checked.wait(10))

    def register(_):
        api = as_client(token)
        api.raise_request_exception = False
        answer = api.post(
            "/api/v1/webhooks/", {"url": "https://hooks.example.com/a"}, format="json"
        )
        return answer.status_code, "secret" in answer.json()

    assert sorted(run_in_threads(2, register)) == [(200, False), (201, True)]
    assert WebhookSubscription.objects.filter(channel=web, is_active=True).count() == 1


def test_the_address_connected_to_is_the_one_checked(web, monkeypatch, settings):
    """DNS rebinding: the name answered a public address to the check and 127.0.0.1 to the
    connection (TTL 0). The connected peer is checked, so nothing reaches the loopback."""
    import socket

    from inventory import webhooks

    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    real, asked = socket.getaddrinfo, []

    def rebinding(host, *args, **kwargs):
        if host == "rebind.example.com":
            asked.append(host)
            return real("93.184.215.14" if len(asked) == 1 else "127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        with pytest.raises(webhooks.WebhookUrlRefused):
            webhooks._post(
                f"http://rebind.example.com:{server.server_address[1]}/internal", b"{}", {}
            )
    finally:
        server.shutdown()
    assert len(asked) == 2 and hits == []


def test_a_delivery_through_an_egress_proxy_is_not_refused_for_the_proxys_address(
    monkeypatch, settings
):
    """Behind an egress proxy (http_proxy) the peer is the proxy, on a private address: the
    peer check refused every delivery. The subscriber's name is what is checked then."""
    import urllib.request

    from inventory import webhooks

    seen = []

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proxy = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(
        webhooks,
        "_opener",
        urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": proxy}),  # as http_proxy in the environment
            webhooks._NoRedirects,
            webhooks._CheckedHTTPHandler,
            webhooks._CheckedHTTPSHandler,
        ),
    )
    monkeypatch.setattr(webhooks, "_refuse_internal", lambda url: None)  # a public name
    settings.WEBHOOK_ALLOW_PRIVATE_URLS = False
    try:
        assert webhooks._post("http://hooks.example.com/h", b"{}", {}) == 204
    finally:
        server.shutdown()
    assert seen == ["http://hooks.example.com/h"]


def test_the_admin_shows_a_new_subscriptions_secret_once_saved_not_before(client, web):
    """The add page showed a secret that was not the one saved (each form made its own)."""
    import re

    from tests.factories import make_staff

    client.force_login(make_staff("root", superuser=True))
    add_page = client.get("/admin/inventory/webhooksubscription/add/").content.decode()
    assert not re.findall(r"\b[0-9a-f]{64}\b", add_page)
    client.post(
        "/admin/inventory/webhooksubscription/add/",
        {"channel": web.pk, "url": "https://market.example/hook", "is_active": "on"},
    )
    hook = WebhookSubscription.objects.get()
    page = client.get(f"/admin/inventory/webhooksubscription/{hook.pk}/change/").content.decode()
    assert hook.secret in page


# --- one attempt: claimed, sent outside any transaction, recorded --------------------------


@contextlib.contextmanager
def attempt_in_another_worker(delivery_id):
    """`webhook_attempt` in a thread of its own (its own database session), as another
    worker process would make it; joined when the block ends."""

    def attempt():
        try:
            webhook_attempt(delivery_id=delivery_id)
        finally:
            connections.close_all()

    worker = threading.Thread(target=attempt)
    worker.start()
    try:
        yield
    finally:
        worker.join(15)
    assert not worker.is_alive()


@pytest.fixture
def syncs_by_hand(monkeypatch):
    """Committed stock changes queue no sync, and syncs no delivery: the test runs each."""
    from inventory import availability, webhooks

    monkeypatch.setattr(availability, "_held", True)
    monkeypatch.setattr(webhooks, "_queue", lambda ids: None)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_slow_subscriber_holds_no_lock_that_syncs_or_registrations_wait_on(
    web, store, syncs_by_hand
):
    """The attempt locked the delivery and, through the join, the subscription for the whole
    POST: each sync recording a delivery for that subscriber (the foreign key's check) and
    each registration of its URL waited for the subscriber's answer. A lock wait is an error
    here (lock_timeout), not a stall."""
    from django.db import connection, transaction

    from inventory.availability import availability_sync_pending
    from inventory.models import ChannelAvailability
    from inventory.webhooks import webhook_subscribe
    from tests.concurrency import require_postgres

    require_postgres()
    sold, arrived = VariantFactory(), VariantFactory()
    with Subscriber([], hold_first=True) as subscriber:
        WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        stock_receive(lines=[StockLine(sold.pk, store.pk, 3)], reference="d1")
        availability_sync_pending()
        [first] = WebhookDelivery.objects.all()
        with attempt_in_another_worker(first.pk):
            assert subscriber.holding.wait(5)  # the POST is in flight
            stock_receive(lines=[StockLine(arrived.pk, store.pk, 5)], reference="d2")
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '1s'")
                assert availability_sync_pending() == 1
                assert webhook_subscribe(channel=web, url=subscriber.url)[1] is False
            subscriber.release.set()
    assert ChannelAvailability.objects.get(channel=web, variant=arrived).available == 5
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("delivered", 1)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_is_sent_while_the_first_is_in_flight_and_the_first_once(
    web, store, syncs_by_hand
):
    """The second delivery's task found the subscription locked by the first's attempt and
    skipped it without a retry: it waited for beat's sweep. The first, run again while in
    flight (its message twice, the sweep), is not sent a second time."""
    from inventory.availability import availability_sync_pending
    from inventory.tasks import deliver_webhook
    from tests.concurrency import require_postgres

    require_postgres()
    with Subscriber([], hold_first=True) as subscriber:
        WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        for n in range(2):
            stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 3)], reference=f"d{n}")
            availability_sync_pending()
        first, second = WebhookDelivery.objects.order_by("id")
        with attempt_in_another_worker(first.pk):
            assert subscriber.holding.wait(5)
            deliver_webhook(second.pk)  # another worker takes the second's message
            assert webhook_attempt(delivery_id=first.pk) is None  # in flight: not due
            assert sweep_webhooks() == 0
            second.refresh_from_db()
            assert (second.status, second.attempts) == ("delivered", 1)
            subscriber.release.set()
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("delivered", 1)
    sent = [headers["X-Delivery-Id"] for headers, _ in subscriber.received]
    assert sent == [str(first.pk), str(second.pk)]


def test_a_delivery_whose_worker_died_mid_post_is_sent_again_once_its_lease_is_over(
    web, store, monkeypatch
):
    """The attempt counts from its claim, and the claim holds the delivery for LEASE_SECONDS:
    a worker killed during the POST leaves it pending, not due until then, then the sweep
    sends it again, with the same X-Delivery-Id."""
    from inventory import webhooks

    class WorkerKilled(BaseException):
        pass

    def killed(*args):
        raise WorkerKilled

    variant = VariantFactory()
    with Subscriber([]) as subscriber:
        WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        stock_receive(lines=[StockLine(variant.pk, store.pk, 3)], reference="delivery")
        sync_channel_availability()
        delivery = WebhookDelivery.objects.get()
        with monkeypatch.context() as patched:
            patched.setattr(webhooks, "_post", killed)
            with pytest.raises(WorkerKilled):
                webhook_attempt(delivery_id=delivery.pk)
        delivery.refresh_from_db()
        assert (delivery.status, delivery.attempts, delivery.log.count()) == ("pending", 1, 0)
        lease = delivery.next_attempt_at - timezone.now()
        assert timedelta(seconds=webhooks.LEASE_SECONDS - 5) < lease
        assert lease <= timedelta(seconds=webhooks.LEASE_SECONDS)
        assert sweep_webhooks() == 0
        assert webhook_attempt(delivery_id=delivery.pk) is None

        make_due(delivery)  # the lease is over
        assert sweep_webhooks() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    [(headers, _)] = subscriber.received
    assert headers["X-Delivery-Id"] == str(delivery.pk)


def test_an_attempt_ends_at_its_deadline_however_the_subscriber_trickles(web, store, monkeypatch):
    """TIMEOUT_SECONDS applied to each socket read: a subscriber sending its answer a byte at
    a time, each well within it, held one attempt (and its worker) for as long as it liked."""
    import socket

    from inventory import webhooks

    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.5)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def trickle():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(30):  # a header byte every 0.1 s, for 3 s
            if stop.wait(0.1):
                break
            conn.sendall(b"a")
        with contextlib.suppress(OSError):
            conn.sendall(b"\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        WebhookSubscription.objects.create(channel=web, url=url)
        stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 3)], reference="d1")
        sync_channel_availability()
        delivery = WebhookDelivery.objects.get()
        webhook_attempt(delivery_id=delivery.pk)
    finally:
        stop.set()
        server.join(5)
        listener.close()
    delivery.refresh_from_db()
    [attempt] = delivery.log.all()
    assert attempt.duration_ms < 1000, attempt.duration_ms
    assert attempt.status_code is None and attempt.error.startswith("TimeoutError")
    assert (delivery.status, delivery.attempts) == ("pending", 1)  # retried after back-off


def test_the_delivery_task_is_stopped_before_its_delivery_may_be_sent_again():
    """The task's time limits are the backstop of the attempt's deadline; the lease outlasts
    them, so no second POST starts while the first worker may still be at it."""
    from inventory import webhooks
    from inventory.tasks import deliver_webhook

    soft, hard = deliver_webhook.soft_time_limit, deliver_webhook.time_limit
    assert webhooks.TIMEOUT_SECONDS < soft < hard < webhooks.LEASE_SECONDS


def test_a_retry_sends_only_what_no_newer_delivery_carries_and_none_if_nothing_is_left(web, store):
    """Receive 5 (the delivery fails, 503), damage 4 (the next delivery, 1 left, arrives),
    then the first one's retry came due and told the subscriber 5 while 1 was left. A retry
    drops the SKUs published anew since; with none left it is superseded, not sent."""
    from inventory.models import ChannelAvailability
    from inventory.services import stock_adjust

    tee, cap = VariantFactory(sku="TEE-M"), VariantFactory(sku="CAP")

    def figures(delivery_body):
        return {
            change["sku"]: change["available"] for change in json.loads(delivery_body)["changes"]
        }

    def change_and_send(variant, delta):
        stock_adjust(variant_id=variant.pk, location_id=store.pk, delta=delta, reason="damage")
        sync_channel_availability()
        newest = WebhookDelivery.objects.order_by("-id").first()
        assert webhook_attempt(delivery_id=newest.pk).status == "delivered"

    with Subscriber([503, 200, 503, 200]) as subscriber:
        WebhookSubscription.objects.create(channel=web, url=subscriber.url)
        stock_receive(
            lines=[StockLine(tee.pk, store.pk, 5), StockLine(cap.pk, store.pk, 2)],
            reference="delivery",
        )
        sync_channel_availability()
        first = WebhookDelivery.objects.get()
        assert webhook_attempt(delivery_id=first.pk).status == "pending"  # 503

        change_and_send(tee, -4)  # TEE-M: 1 left, told
        make_due(first)
        assert webhook_attempt(delivery_id=first.pk).status == "pending"  # 503 again
        change_and_send(cap, -1)  # CAP: 1 left, told
        make_due(first)
        assert sweep_webhooks() == 1  # due, and sent nothing
    bodies = [figures(body) for _, body in subscriber.received]
    assert bodies == [{"TEE-M": 5, "CAP": 2}, {"TEE-M": 1}, {"CAP": 2}, {"CAP": 1}]
    told = {sku: figure for body in bodies for sku, figure in body.items()}  # the last word
    first.refresh_from_db()
    assert (first.status, first.attempts) == ("superseded", 2)
    assert [c["sku"] for c in first.payload["changes"]] == ["CAP"]  # what it last sent
    published = ChannelAvailability.objects.filter(channel=web)
    assert told == {row.variant.sku: row.available for row in published} == {"TEE-M": 1, "CAP": 1}


def test_an_answer_with_nul_bytes_is_logged_spelled_out_and_counts_toward_giving_up(web, store):
    """A status line with NUL bytes went into the attempt's error text, which PostgreSQL
    refuses: the attempt raised, was not logged nor counted, and the delivery was sent again
    at every sweep, for ever."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    stop = threading.Event()

    def answer_nuls():
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 2" + b"\x00" * 300 + b" OK\r\nContent-Length: 0\r\n\r\n")

    server = threading.Thread(target=answer_nuls, daemon=True)
    server.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        WebhookSubscription.objects.create(channel=web, url=url)
        stock_receive(lines=[StockLine(VariantFactory().pk, store.pk, 5)], reference="d1")
        sync_channel_availability()
        delivery = WebhookDelivery.objects.get()
        for _ in range(MAX_ATTEMPTS + 1):
            make_due(delivery)
            webhook_attempt(delivery_id=delivery.pk)
    finally:
        stop.set()
        server.join(5)
        listener.close()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("failed", MAX_ATTEMPTS)
    errors = list(delivery.log.values_list("error", flat=True))
    assert len(errors) == MAX_ATTEMPTS
    for error in errors:
        assert error.startswith("BadStatusLine: HTTP/1.1 2\\x00\\x00")
        assert "\x00" not in error and len(error) == 500  # four characters a NUL, cut


# --- one URL per endpoint -------------------------------------------------------------------


def test_an_endpoint_spelt_otherwise_is_the_same_subscription_and_an_impossible_port_a_400(web):
    """Scheme and host are case-insensitive and :443 is https's own port: these spellings
    made more active subscriptions of one endpoint, each sent every change. Port 99999 was
    registered (a secret handed out) and every delivery failed."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    _, token = make_api_client(web, name="storefront")
    storefront = as_client(token)
    made = storefront.post(
        "/api/v1/webhooks/", {"url": "HTTPS://Hooks.Example.COM:443/avail?k=A"}, format="json"
    )
    assert made.status_code == 201
    assert made.json()["url"] == "https://hooks.example.com/avail?k=A"  # path, query kept
    for spelling in (
        "https://hooks.example.com/avail?k=A",
        "https://HOOKS.example.com/avail?k=A",
        "https://hooks.example.com:443/avail?k=A",
    ):
        again = storefront.post("/api/v1/webhooks/", {"url": spelling}, format="json")
        assert (again.status_code, again.json()["id"]) == (200, made.json()["id"]), spelling
    other_port = storefront.post(
        "/api/v1/webhooks/", {"url": "http://hooks.example.com:8080"}, format="json"
    )
    assert other_port.json()["url"] == "http://hooks.example.com:8080/"
    assert WebhookSubscription.objects.filter(channel=web, is_active=True).count() == 2

    for url in ("https://hooks.example.com:99999/avail", "https://hooks.example.com:0/avail"):
        refused = storefront.post("/api/v1/webhooks/", {"url": url}, format="json")
        assert refused.status_code == 400, url
        body = refused.json()
        assert body["code"] == "invalid" and "65535" in body["errors"]["url"][0]
    assert WebhookSubscription.objects.count() == 2


# 500 characters as typed, with no path: its spelling with "/" is one past the column.
_LONG = "https://hooks.example.com?k=" + "a" * (500 - len("https://hooks.example.com?k="))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("https://bücher.example/avail", "https://xn--bcher-kva.example/avail"),  # IDNA
        ("https://straße.de/avail", "https://xn--strae-oqa.de/avail"),  # IDNA 2008, not 2003
        ("https://hooks.example.com/avail", "https://hooks.example.com/avail#part"),
        ("https://[2001:db8::1]/avail", "https://[2001:0db8:0:0::1]/avail"),
    ],
)
def test_an_endpoint_spelt_in_another_form_is_the_same_subscription(web, first, second):
    """A name and its IDNA form are one host, a fragment is never sent, and two spellings of
    one IPv6 address are one address: each second spelling was a second subscription."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    storefront = as_client(make_api_client(web, name="storefront")[1])
    made = storefront.post("/api/v1/webhooks/", {"url": first}, format="json")
    assert made.status_code == 201, made.json()
    again = storefront.post("/api/v1/webhooks/", {"url": second}, format="json")
    assert (again.status_code, again.json()["id"]) == (200, made.json()["id"])
    assert "#" not in again.json()["url"] and not set("üß") & set(again.json()["url"])


def test_a_host_with_an_eszett_is_not_spelt_as_another_host(web):
    """Python's IDNA 2003 codec spelt straße.de as strasse.de: another host, which got the
    deliveries."""
    from inventory.webhooks import webhook_url_normal

    assert webhook_url_normal("https://straße.de/avail") == "https://xn--strae-oqa.de/avail"
    assert webhook_url_normal("https://strasse.de/avail") == "https://strasse.de/avail"
    assert webhook_url_normal("https://my_hooks.example/a") == "https://my_hooks.example/a"
    # What IDNA 2008 refuses and resolvers take is kept, whichever way it is typed (these
    # were refused in their Unicode spelling, found by the second-round review).
    assert webhook_url_normal("https://i❤.ws/a") == "https://xn--i-7iq.ws/a"
    assert webhook_url_normal("https://xn--i-7iq.ws/a") == "https://xn--i-7iq.ws/a"
    assert (
        webhook_url_normal("https://my_hooks.straße.de/a") == "https://my_hooks.xn--strae-oqa.de/a"
    )
    assert webhook_url_normal("https://ab--cd.straße.de/a") == "https://ab--cd.xn--strae-oqa.de/a"
    for no_host in ("https://xn--zz.example/a", "https://a..b/a", "https://\ue000.example/a"):
        with pytest.raises(ValueError):
            webhook_url_normal(no_host)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://user:pw@hooks.example.com/hook", "user name or password"),  # never reached
        (_LONG, "500 characters"),  # its spelling did not fit: 400 out_of_range, no field
    ],
)
def test_a_url_no_delivery_could_reach_is_a_400_naming_url(web, url, says):
    """Each was registered, a secret handed out, and every delivery failed (urllib takes the
    user name and password for part of the host name), or refused naming no field."""
    from tests.conftest import as_client
    from tests.factories import make_api_client

    storefront = as_client(make_api_client(web, name="storefront")[1])
    refused = storefront.post("/api/v1/webhooks/", {"url": url}, format="json")
    assert refused.status_code == 400, refused.json()
    assert refused.json()["code"] == "invalid"
    assert says in refused.json()["errors"]["url"][0]
    assert not WebhookSubscription.objects.exists()


def test_the_admin_stores_an_endpoint_as_the_api_does(client, web):
    """Subscriptions added in the admin were stored as typed: another spelling of an active
    endpoint was a second subscription, an impossible port a subscription that always fails."""
    from tests.factories import make_staff

    client.force_login(make_staff("root", superuser=True))
    add = "/admin/inventory/webhooksubscription/add/"
    client.post(add, {"channel": web.pk, "url": "HTTPS://Market.Example:443", "is_active": "on"})
    assert list(WebhookSubscription.objects.values_list("url", flat=True)) == [
        "https://market.example/"
    ]
    for url in ("https://market.example/", "https://market.example:99999/"):
        page = client.post(add, {"channel": web.pk, "url": url, "is_active": "on"})
        assert page.status_code == 200 and page.context["adminform"].form.errors, url
    assert WebhookSubscription.objects.count() == 1


def test_existing_subscriptions_take_the_one_spelling_and_duplicates_are_turned_off(web, pos):
    """The migration: stored as typed before, an old spelling registered again would not
    find its subscription now. The oldest active one of an endpoint stays active."""
    import importlib

    from django.apps import apps

    migration = importlib.import_module("inventory.migrations.0008_webhook_urls_normal")
    rows = [
        (web, "HTTPS://Market.Example/h", True),  # the oldest: kept, spelt anew
        (web, "https://market.example:443/h", True),  # the same endpoint: turned off
        (web, "https://market.example/h", False),  # removed before: stays removed
        (pos, "https://market.example/h", True),  # another channel's
        (web, "https://market.example:99999/h", True),  # refused now: left as it was
        (web, _LONG, True),  # spelt anew, past the column: left as it was
        (web, "https://u:p@market.example/h", True),  # refused now: left as it was
    ]
    made = [
        WebhookSubscription.objects.create(channel=channel, url=url, is_active=active)
        for channel, url, active in rows
    ]
    migration.spell_urls_as_registered_now(apps, None)
    after = [WebhookSubscription.objects.get(pk=sub.pk) for sub in made]
    assert [(sub.url, sub.is_active) for sub in after] == [
        ("https://market.example/h", True),
        ("https://market.example/h", False),
        ("https://market.example/h", False),
        ("https://market.example/h", True),
        ("https://market.example:99999/h", True),
        (_LONG, True),
        ("https://u:p@market.example/h", True),
    ]
