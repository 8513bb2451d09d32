"""Availability webhooks: signed, retried with back-off, every attempt logged."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from inventory.models import WebhookDelivery, WebhookSubscription
from inventory.services import StockLine, stock_receive
from inventory.tasks import sweep_webhooks, sync_channel_availability
from inventory.webhooks import MAX_ATTEMPTS, backoff, webhook_attempt
from tests.factories import VariantFactory

pytestmark = pytest.mark.django_db


class Subscriber:
    """A real HTTP endpoint on 127.0.0.1 answering with the given status codes in turn."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.received = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
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
