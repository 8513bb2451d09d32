"""Write operations on channels, locations and API clients."""

import copy
import hashlib
import secrets
import threading
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from rest_framework import status

from .errors import DomainError, UnknownChannel, UnknownLocation
from .models import ApiClient, Channel, ChannelLocation, Location

TOKEN_PREFIX = "oc_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class LocationNotInChannel(DomainError):
    code = "location_not_in_channel"
    default_detail = "That location does not feed that channel."


class InvalidApiClient(DomainError):
    code = "invalid"
    default_detail = "The API client's details are not valid."


class UnknownApiClient(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    default_detail = "No API client has that id."


@transaction.atomic
def api_client_create(
    *, name: str, channel_code: str, location_code: str | None = None, key: str | None = None
) -> tuple[ApiClient, str]:
    """Create an API client and return it with its token; only the hash is stored.

    `key` lets demo data use a deterministic token; real clients get a random one.
    """
    name = (name or "").strip()
    longest = ApiClient._meta.get_field("name").max_length
    if not name or len(name) > longest:
        raise InvalidApiClient(f"Name the client in 1 to {longest} characters.", field="name")
    channel = Channel.objects.filter(code=channel_code).first()
    if channel is None:
        raise UnknownChannel(channel=channel_code)
    if channel.kind == Channel.Kind.POS and not location_code:
        # A till sells and counts at its store: without one every sale was refused.
        raise InvalidApiClient("A POS client is a till: give its store (`location`).")
    if channel.kind != Channel.Kind.POS and location_code:
        # A web or marketplace client given a store was taken for a till (any order,
        # returns, in-store sales, offline sync); the contract gives a location to a POS only.
        raise InvalidApiClient(
            f"Only a POS client stands in a store: a {channel.kind} channel's client takes "
            "no `location`.",
            field="location",
        )
    location = None
    if location_code:
        location = Location.objects.filter(code=location_code).first()
        if location is None:
            raise UnknownLocation(location=location_code)
        if not ChannelLocation.objects.filter(channel=channel, location=location).exists():
            raise LocationNotInChannel(channel=channel_code, location=location_code)
    client = ApiClient(name=name, channel=channel, location=location)
    return client, api_client_issue_token(client=client, key=key)


def _new_key() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def api_client_issue_token(*, client: ApiClient, key: str | None = None) -> str:
    """Give a new (unsaved) client its token: store prefix and hash, save, return the token."""
    key = key or _new_key()
    client.key_prefix = key[:10]
    client.key_hash = _hash(key)
    client.save()
    return key


@transaction.atomic
def api_client_rotate_token(*, client_id: int) -> str:
    """Give an existing client a new token and return it (only its hash is stored); the old
    token is refused from now on: at once in this process, within API_CLIENT_CACHE_SECONDS in
    the others (as a revocation). The client keeps its row, so what it did stays its own: the
    offline sales it synced (their client_id is unique per client) and its idempotency keys,
    and a till resending its outbox with the new token is answered as before, not sold to
    twice, as a new client would be. A revoked client given a new token works again with it.
    """
    client = ApiClient.objects.select_for_update().filter(pk=client_id).first()
    if client is None:
        raise UnknownApiClient(client=client_id)
    key = _new_key()
    ApiClient.objects.filter(pk=client.pk).update(
        key_prefix=key[:10], key_hash=_hash(key), revoked_at=None
    )
    api_client_forget(key_hash=client.key_hash, client_id=client.pk)
    return key


# Token hash -> (monotonic deadline, client with its channel and location), per process.
# Looking a token up costs a third of a small read's CPU (the ORM builds the joined query
# each time); a client calling many times a second is looked up once per API_CLIENT_CACHE_
# SECONDS. This process forgets a client at once when it is revoked, given a new token or
# saved, or its channel or location is saved (omnichannel.apps); other web processes within
# that many seconds.
_authenticated: dict[str, tuple[float, ApiClient]] = {}
_AUTHENTICATED_MAX = 10_000
# Bumped by every forget: a look-up that read the database before a forget (a revocation
# committing in another thread meanwhile) does not keep what it read.
_forgets = 0
_forgets_lock = threading.Lock()  # a forget never falls between that check and the store


def api_client_authenticate(*, key: str) -> ApiClient | None:
    """The active client holding this token, or None. The hash is looked up by index: tokens
    carry 256 bits of randomness, so an unsalted SHA-256 is not guessable. Each caller gets a
    copy: requests in other threads never share the instance they may change."""
    client = _api_client_cached(key=key)
    return copy.copy(client) if client is not None else None


def _api_client_cached(*, key: str) -> ApiClient | None:
    if not key or len(key) > 200:
        return None
    key_hash = _hash(key)
    now = time.monotonic()
    hit = _authenticated.get(key_hash)
    if hit is not None and now < hit[0]:
        return hit[1]
    forgets_before = _forgets
    found = (
        ApiClient.objects.select_related("channel", "location")
        .filter(key_hash=key_hash, revoked_at__isnull=True)
        .order_by()[:1]  # key_hash is unique: no ordering to compile and sort
    )
    client = found[0] if found else None
    if client is None:
        _authenticated.pop(key_hash, None)
    elif settings.API_CLIENT_CACHE_SECONDS > 0:
        with _forgets_lock:
            if _forgets == forgets_before:
                if len(_authenticated) >= _AUTHENTICATED_MAX:
                    _authenticated.clear()  # unknown tokens are never kept: only real clients
                _authenticated[key_hash] = (now + settings.API_CLIENT_CACHE_SECONDS, client)
    return client


def api_client_touch(*, client: ApiClient, resolution_seconds: int) -> None:
    """Record the client's use, at most once per `resolution_seconds`, not on every request."""
    now = timezone.now()
    last = client.last_used_at
    if last is not None and (now - last).total_seconds() <= resolution_seconds:
        return
    ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
    client.last_used_at = now
    hit = _authenticated.get(client.key_hash)
    if hit is not None:
        hit[1].last_used_at = now


def api_client_forget(*, key_hash: str | None = None, client_id: int | None = None) -> None:
    """Drop clients from this process's look-up cache: one by token hash or id, or all. Now,
    and again when the caller's transaction commits: a look-up in another thread between the
    two still read the row as it was."""
    _forget(key_hash, client_id)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _forget(key_hash, client_id))


def _forget(key_hash: str | None, client_id: int | None) -> None:
    global _forgets
    with _forgets_lock:
        _forgets += 1
        if key_hash is None and client_id is None:
            _authenticated.clear()
            return
        for cached_hash, (_, client) in list(_authenticated.items()):
            if cached_hash == key_hash or client.pk == client_id:
                _authenticated.pop(cached_hash, None)


def api_client_revoke(*, client_id: int) -> None:
    ApiClient.objects.filter(pk=client_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    api_client_forget(client_id=client_id)


def worker_heartbeat_record(*, hostname: str) -> None:
    from .models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:255], defaults={"seen_at": timezone.now()}
    )
