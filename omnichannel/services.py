"""Write operations on channels, locations and API clients."""

import hashlib
import secrets

from django.db import transaction
from django.utils import timezone

from .errors import DomainError, UnknownChannel, UnknownLocation
from .models import ApiClient, Channel, ChannelLocation, Location

TOKEN_PREFIX = "oc_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class LocationNotInChannel(DomainError):
    code = "location_not_in_channel"
    default_detail = "That location does not feed that channel."


@transaction.atomic
def api_client_create(
    *, name: str, channel_code: str, location_code: str | None = None, key: str | None = None
) -> tuple[ApiClient, str]:
    """Create an API client and return it with its token; only the hash is stored.

    `key` lets demo data use a deterministic token; real clients get a random one.
    """
    channel = Channel.objects.filter(code=channel_code).first()
    if channel is None:
        raise UnknownChannel(channel=channel_code)
    location = None
    if location_code:
        location = Location.objects.filter(code=location_code).first()
        if location is None:
            raise UnknownLocation(location=location_code)
        if not ChannelLocation.objects.filter(channel=channel, location=location).exists():
            raise LocationNotInChannel(channel=channel_code, location=location_code)
    client = ApiClient(name=name, channel=channel, location=location)
    return client, api_client_issue_token(client=client, key=key)


def api_client_issue_token(*, client: ApiClient, key: str | None = None) -> str:
    """Give a new (unsaved) client its token: store prefix and hash, save, return the token."""
    key = key or TOKEN_PREFIX + secrets.token_urlsafe(32)
    client.key_prefix = key[:10]
    client.key_hash = _hash(key)
    client.save()
    return key


def api_client_authenticate(*, key: str) -> ApiClient | None:
    """The active client holding this token, or None. The hash is looked up by index: tokens
    carry 256 bits of randomness, so an unsalted SHA-256 is not guessable."""
    if not key or len(key) > 200:
        return None
    found = (
        ApiClient.objects.select_related("channel", "location")
        .filter(key_hash=_hash(key), revoked_at__isnull=True)
        .order_by()[:1]  # key_hash is unique: no ordering to compile and sort
    )
    return found[0] if found else None


def api_client_revoke(*, client_id: int) -> None:
    ApiClient.objects.filter(pk=client_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def worker_heartbeat_record(*, hostname: str) -> None:
    from .models import WorkerHeartbeat

    WorkerHeartbeat.objects.update_or_create(
        hostname=hostname[:255], defaults={"seen_at": timezone.now()}
    )
