"""Read queries on channels and locations, confined to what the caller may see."""

from django.db.models import Prefetch, Q, QuerySet

from .errors import ChannelForbidden, LocationForbidden, UnknownChannel, UnknownLocation
from .models import ApiClient, Channel, ChannelLocation, Location


def channel_scope(*, client: ApiClient | None, code: str | None) -> Channel | None:
    """The channel a request acts in.

    An API client always acts in its own channel; naming another one is a 403. Staff act in
    the channel they name, or in none (prices then are not shown).
    """
    if client is not None:
        if code and code != client.channel.code:
            raise ChannelForbidden(channel=code)
        return client.channel
    if not code:
        return None
    channel = Channel.objects.filter(code=code).first()
    if channel is None:
        raise UnknownChannel(channel=code)
    return channel


def channel_list(*, client: ApiClient | None) -> QuerySet[Channel]:
    feeds = ChannelLocation.objects.select_related("location").order_by(
        "priority", "location__code"
    )
    qs = Channel.objects.prefetch_related(Prefetch("feeds", queryset=feeds)).order_by("code")
    if client is not None:
        qs = qs.filter(pk=client.channel_id)
    return qs


def location_list(*, client: ApiClient | None) -> QuerySet[Location]:
    """Staff see every location; a client sees those feeding its channel and its own."""
    qs = Location.objects.order_by("code")
    if client is not None:
        qs = qs.filter(Q(feeds__channel_id=client.channel_id) | Q(pk=client.location_id)).distinct()
    return qs


def location_for_read(*, client: ApiClient | None, code: str) -> Location:
    """A location the caller may read; unknown is 400, outside the client's scope 403."""
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise UnknownLocation(location=code)
    if client is not None and not location_list(client=client).filter(pk=location.pk).exists():
        raise LocationForbidden(location=code)
    return location


def location_for_write(*, client: ApiClient | None, code: str) -> Location:
    """A location the caller may change stock at: a POS client only its own store."""
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise UnknownLocation(location=code)
    if client is not None and client.location_id != location.pk:
        raise LocationForbidden(location=code)
    return location
