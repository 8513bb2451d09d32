"""Availability webhooks: each change a channel publishes becomes a signed POST to its
subscribers, retried with exponential back-off, every attempt logged.

A delivery is created in the same transaction as the availability change it reports and sent
after commit; beat's sweeper re-sends any delivery whose next attempt is due, so a lost task
or a worker restart only delays it. One attempt is one call of `webhook_attempt`: a short
transaction claims the delivery, the POST is made outside any transaction, a second short
one records what the subscriber answered.
"""

import functools
import hashlib
import hmac
import http.client
import io
import ipaddress
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from omnichannel.domains import domain_a_labels
from omnichannel.errors import DomainError

from .models import ChannelAvailability, WebhookAttempt, WebhookDelivery, WebhookSubscription

MAX_ATTEMPTS = 8
BASE_DELAY_SECONDS = 10
MAX_DELAY_SECONDS = 3600
# One attempt, whole: connecting, sending and the answer's status line and headers. A socket
# timeout alone is per read: a subscriber answering a byte a second held the attempt for as
# long as it liked.
TIMEOUT_SECONDS = 5
# The delivery task's own limits (inventory.tasks), a backstop should an attempt outlive its
# deadline anyway: interrupted (a failed attempt, retried), then killed.
TASK_SOFT_TIME_LIMIT = TIMEOUT_SECONDS + 10
TASK_TIME_LIMIT = TIMEOUT_SECONDS + 20
# A claimed delivery is not due again for this long: no second task or sweep sends it while
# the worker that claimed it may still be at it, and one that died with it sends it again
# once the lease is over. Longer than the task may live.
LEASE_SECONDS = 2 * TASK_TIME_LIMIT


class WebhookUrlRefused(DomainError):
    code = "invalid"
    field = "url"
    default_detail = "That URL cannot receive webhooks."


def _is_private(address: str) -> bool:
    """Loopback, private, link-local, reserved or multicast: not a subscriber's address."""
    ip = ipaddress.ip_address(address.split("%")[0])  # an IPv6 zone (fe80::1%eth0) dropped
    return not ip.is_global or ip.is_multicast


def _refuse_internal(url: str) -> None:
    """The worker POSTs to what a client registers: not to this machine or its private
    network (the database, Redis, a cloud's metadata address), unless the settings allow it
    (WEBHOOK_ALLOW_PRIVATE_URLS, for a subscriber on the same network). A name that does not
    resolve now is let through: its deliveries fail and are retried like any other."""
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return
    for address in addresses:
        if _is_private(address):
            raise WebhookUrlRefused(
                f"{host} is a private or local address: webhooks go to public ones.",
                errors={"url": ["Give a public http or https URL."]},
            )


_DEFAULT_PORTS = {"http": 80, "https": 443}
_URL_LENGTH = WebhookSubscription._meta.get_field("url").max_length


def webhook_url_normal(url: str) -> str:
    """One spelling per endpoint: scheme and host lower-case, a host in its ASCII (IDNA)
    form and an IP address in its short form, the scheme's own port left out, an empty path
    `/` (what is requested), no fragment (never sent). HTTPS://HOOKS.EXAMPLE.COM/avail and
    https://hooks.example.com:443/avail were other subscriptions of the same endpoint, each
    sent every change. Raises ValueError, with the sentence to show, for a URL no delivery
    can reach: a port no URL can have, a user name or password (urllib takes it for part of
    the host name), a host no name can be, or a spelling past the column's 500 characters
    (each was accepted, or a 400 naming no field, and every delivery failed)."""
    refused = ValueError("Give a host and, if any, a port from 1 to 65535.")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:  # a port past 65535 or not a number, an unclosed [IPv6
        raise refused from exc
    if port == 0 or not parts.hostname:
        raise refused
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            "Give the URL without a user name or password: deliveries are signed with the "
            "subscription's secret (X-Signature)."
        )
    try:
        host = f"[{ipaddress.IPv6Address(parts.hostname).compressed}]"
    except ValueError:
        try:
            host = str(ipaddress.IPv4Address(parts.hostname))
        except ValueError:
            try:
                host = domain_a_labels(parts.hostname)  # IDNA 2008, see there
            except UnicodeError as exc:
                raise refused from exc
    scheme = parts.scheme.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        host = f"{host}:{port}"
    normal = urllib.parse.urlunsplit((scheme, host, parts.path or "/", parts.query, ""))
    if len(normal) > _URL_LENGTH:
        raise ValueError(f"Give a URL of at most {_URL_LENGTH} characters, as it is stored.")
    return normal


@transaction.atomic
def webhook_subscribe(*, channel, url: str) -> tuple[WebhookSubscription, bool]:
    """Register `url` for the channel's availability changes; (subscription, created). The
    same URL registered again while active, however spelt, is the same subscription, never a
    second one (it would get every change twice), and its secret is not handed out again. A
    URL registered before and removed since starts over, with a new secret."""
    try:
        url = webhook_url_normal(url)
    except ValueError as exc:
        raise WebhookUrlRefused(str(exc), errors={"url": [str(exc)]}) from exc
    _refuse_internal(url)
    found = WebhookSubscription.objects.select_for_update().filter(channel=channel, url=url)
    existing = found.order_by("-is_active", "pk").first()
    if existing is not None and existing.is_active:
        return existing, False
    try:
        with transaction.atomic():  # one active per URL (a constraint): a race loses here
            if existing is not None:
                existing.is_active = True
                existing.secret = WebhookSubscription._meta.get_field("secret").get_default()
                existing.save(update_fields=["is_active", "secret"])
                return existing, True
            return WebhookSubscription.objects.create(channel=channel, url=url), True
    except IntegrityError:  # registered by the other request a moment ago
        return found.get(is_active=True), False


@transaction.atomic
def webhook_unsubscribe(*, subscription_id: int) -> None:
    """No more deliveries to it, the ones waiting for a retry included (given up); what was
    sent stays in the log (deliveries, attempts)."""
    WebhookSubscription.objects.filter(pk=subscription_id).update(is_active=False)
    WebhookDelivery.objects.filter(
        subscription_id=subscription_id, status=WebhookDelivery.Status.PENDING
    ).update(status=WebhookDelivery.Status.FAILED)


def sign(secret: str, body: bytes) -> str:
    """The contract's signature: the HMAC-SHA256 of the body, in hex, and nothing else (a
    `sha256=` prefix failed a subscriber comparing the digest it computed)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """10 s, 20 s, 40 s ... capped at an hour."""
    return timedelta(seconds=min(BASE_DELAY_SECONDS * 2 ** max(attempts - 1, 0), MAX_DELAY_SECONDS))


def webhooks_record(*, changed: list[ChannelAvailability]) -> None:
    """Inside the availability transaction: one delivery per subscriber and channel."""
    if not changed:
        return
    by_channel: dict[int, list[ChannelAvailability]] = {}
    for row in changed:
        by_channel.setdefault(row.channel_id, []).append(row)
    subscriptions = list(
        WebhookSubscription.objects.filter(
            channel_id__in=by_channel, is_active=True
        ).select_related("channel")
    )
    if not subscriptions:
        return  # nobody listens: no SKUs to look up (every sync asks this)
    from catalog.models import Variant

    skus = dict(
        Variant.objects.filter(pk__in={row.variant_id for row in changed}).values_list("id", "sku")
    )
    now = timezone.now()
    deliveries = [
        WebhookDelivery(
            subscription=subscription,
            payload={
                "event": "availability.changed",
                "channel": subscription.channel.code,
                "changes": [
                    {
                        "sku": skus[row.variant_id],
                        "available": row.available,
                        "locations": row.locations,
                        "as_of": row.as_of.isoformat(),
                    }
                    for row in by_channel[subscription.channel_id]
                ],
            },
            next_attempt_at=now,
        )
        for subscription in subscriptions
    ]
    if deliveries:
        WebhookDelivery.objects.bulk_create(deliveries)
        ids = [delivery.pk for delivery in deliveries]
        transaction.on_commit(lambda: _queue(ids), robust=True)


def _queue(delivery_ids: list[int]) -> None:
    from .tasks import deliver_webhook

    for delivery_id in delivery_ids:
        deliver_webhook.delay(delivery_id)


def _refuse_peer(sock) -> None:
    """The address actually connected to, checked: the name was resolved again to connect,
    and may answer otherwise than when it was checked (DNS rebinding)."""
    if settings.WEBHOOK_ALLOW_PRIVATE_URLS:
        return
    peer = sock.getpeername()[0]
    if _is_private(peer):
        sock.close()
        raise WebhookUrlRefused(
            f"{peer} is a private or local address: webhooks go to public ones."
        )


class _AttemptTimedOut(TimeoutError):
    def __init__(self) -> None:
        super().__init__(f"no full answer within {TIMEOUT_SECONDS} s")


class _DeadlineReader(io.RawIOBase):
    """The answer's bytes, each read waiting only for what is left of the attempt."""

    def __init__(self, raw, sock, deadline: float) -> None:
        self._raw, self._sock, self._deadline = raw, sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _AttemptTimedOut()
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, deadline: float, **kwargs) -> None:
        super().__init__(sock, *args, **kwargs)
        self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, deadline))


class _Deadline:
    """For an HTTP(S) connection: the whole exchange within TIMEOUT_SECONDS of its making
    (urllib makes one per request): connecting, each send and each read of the answer wait
    only for what is left."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._deadline = time.monotonic() + TIMEOUT_SECONDS
        self.response_class = functools.partial(_DeadlineResponse, deadline=self._deadline)

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise _AttemptTimedOut()
        return left

    def connect(self):
        self.timeout = self._left()  # the TCP connection and the TLS handshake
        super().connect()

    def send(self, data):
        if self.sock is not None:
            self.sock.settimeout(self._left())
        super().send(data)


class _TimedHTTPConnection(_Deadline, http.client.HTTPConnection):
    pass


class _TimedHTTPSConnection(_Deadline, http.client.HTTPSConnection):
    pass


class _CheckedHTTPConnection(_TimedHTTPConnection):
    def connect(self):
        super().connect()
        _refuse_peer(self.sock)


class _CheckedHTTPSConnection(_TimedHTTPSConnection):
    def connect(self):
        super().connect()  # the TLS handshake is done: the peer is still the socket's
        _refuse_peer(self.sock)


def _through_proxy(req) -> bool:
    """Sent through an egress proxy (http_proxy, https_proxy): the peer is the proxy, on a
    private address as a rule; the subscriber's name was checked (`_refuse_internal`)."""
    return bool(req.has_proxy() or getattr(req, "_tunnel_host", None))


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        plain = _through_proxy(req)
        return self.do_open(_TimedHTTPConnection if plain else _CheckedHTTPConnection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        plain = _through_proxy(req)
        connection = _TimedHTTPSConnection if plain else _CheckedHTTPSConnection
        return self.do_open(connection, req, context=self._context)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A subscriber answers its own URL: a redirect is its answer (a 3xx, not delivered,
    retried), never followed. urllib turns a redirected POST into a GET to wherever the
    Location says, a private address included."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects, _CheckedHTTPHandler, _CheckedHTTPSHandler)


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    _refuse_internal(url)  # again at each attempt: the name may resolve elsewhere by now
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def webhook_attempt(*, delivery_id: int) -> WebhookDelivery | None:
    """Make one attempt if the delivery is pending and due; returns it, or None if nothing
    was due (already delivered, given up, not yet time, or being sent by another worker:
    safe to call twice, at once too)."""
    delivery = _claim(delivery_id)
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return delivery
    body = json.dumps(delivery.payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "omnichannel-webhooks/1",
        "X-Delivery-Id": str(delivery.pk),
        "X-Signature": sign(delivery.subscription.secret, body),
    }
    started = time.monotonic()
    status_code, error = None, ""
    try:
        status_code = _post(delivery.subscription.url, body, headers)
    except Exception as exc:  # network errors of any kind: logged, retried
        error = _storable(f"{type(exc).__name__}: {exc}")
    return _record(
        delivery_id,
        status_code=status_code,
        error=error,
        duration_ms=int((time.monotonic() - started) * 1000),
    )


_ERROR_LENGTH = WebhookAttempt._meta.get_field("error").max_length


def _storable(error: str) -> str:
    """An error text its column takes. It holds what the subscriber answered (a status line,
    read as Latin-1), and PostgreSQL refuses a NUL byte in text: a ValueError, the attempt
    neither logged nor its outcome recorded. NULs and lone surrogates are spelled out, then
    the text is cut to the column."""
    text = error.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text[:_ERROR_LENGTH]


@transaction.atomic
def _claim(delivery_id: int) -> WebhookDelivery | None:
    """Take the delivery for one attempt, in a short transaction that locks its row alone.
    (Held for the whole POST, the lock, and the subscription's taken with it through the
    join, made each availability sync recording a delivery for that subscriber, and each
    other delivery to it, wait for the subscriber's answer.) The attempt counts from here,
    and the lease keeps it from being due again while it is made."""
    delivery = (
        WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("subscription")
        .filter(
            pk=delivery_id,
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at__lte=timezone.now(),
        )
        .first()
    )
    if delivery is None:
        return None
    # Stopped since (admin, API), or its last attempt's worker died: not sent.
    if not delivery.subscription.is_active or delivery.attempts >= MAX_ATTEMPTS:
        delivery.status = WebhookDelivery.Status.FAILED
        delivery.save(update_fields=["status"])
        return delivery
    changes = delivery.payload["changes"]
    unsent = _not_superseded(delivery.subscription.channel_id, changes)
    if not unsent:
        delivery.status = WebhookDelivery.Status.SUPERSEDED
        delivery.save(update_fields=["status"])
        return delivery
    if len(unsent) < len(changes):  # what is sent from now on, and logged
        delivery.payload = {**delivery.payload, "changes": unsent}
    delivery.attempts += 1
    delivery.next_attempt_at = timezone.now() + timedelta(seconds=LEASE_SECONDS)
    delivery.save(update_fields=["payload", "attempts", "next_attempt_at"])
    return delivery


def _not_superseded(channel_id: int, changes: list[dict]) -> list[dict]:
    """The changes whose SKU the channel has not published anew since. A newer figure was
    recorded with a delivery to each subscriber (`webhooks_record`, same transaction), so an
    old one sent now, a retry after a 503 say, would overwrite it at the subscriber: 5 left
    told after 1 left."""
    published = dict(
        ChannelAvailability.objects.filter(
            channel_id=channel_id, variant__sku__in=[change["sku"] for change in changes]
        ).values_list("variant__sku", "as_of")
    )
    return [
        change
        for change in changes
        if change["sku"] not in published
        or published[change["sku"]] <= datetime.fromisoformat(change["as_of"])
    ]


@transaction.atomic
def _record(delivery_id: int, *, status_code: int | None, error: str, duration_ms: int):
    """The attempt's outcome: logged, and the delivery delivered, given up or due again after
    its back-off. One given up meanwhile (its subscription removed) stays so, unless this
    attempt reached the subscriber."""
    delivery = WebhookDelivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None:  # deleted meanwhile, with its subscription
        return None
    WebhookAttempt.objects.create(
        delivery=delivery, status_code=status_code, error=error, duration_ms=duration_ms
    )
    now = timezone.now()
    if status_code is not None and 200 <= status_code < 300:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = now
    elif delivery.status == WebhookDelivery.Status.PENDING:
        if delivery.attempts >= MAX_ATTEMPTS:
            delivery.status = WebhookDelivery.Status.FAILED
        else:
            delivery.next_attempt_at = now + backoff(delivery.attempts)
    delivery.save(update_fields=["status", "delivered_at", "next_attempt_at"])
    return delivery


def webhooks_due(*, limit: int = 500) -> list[int]:
    return list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=timezone.now()
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    )
