"""Read queries on channels and locations, confined to what the caller may see.

Two kinds of caller are confined here: an API client to its channel (and a POS to its store),
and a staff member with a store limit to the locations of that limit (`store_limit`).
"""

from django.db.models import Prefetch, Q, QuerySet

from .errors import ChannelForbidden, LocationForbidden, UnknownChannel, UnknownLocation
from .models import ApiClient, Channel, ChannelLocation, Location, StaffStoreLimit

# The ids of the locations a store-limited staff member may see and change; None: no limit.
StoreLimit = frozenset[int] | None

_CACHE = "_store_limit_cache"


def store_limit(*, user) -> StoreLimit:
    """The locations a staff member is limited to, or None when they have no store limit
    (superusers, staff without a `StaffStoreLimit`, API clients, which are confined by their
    channel and location instead). One query per request: the answer is kept on the user."""
    if user is None or isinstance(user, ApiClient) or not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return None
    cached = getattr(user, _CACHE, False)
    if cached is not False:
        return cached
    rows = list(StaffStoreLimit.objects.filter(user_id=user.pk).values_list("locations", flat=True))
    # No row: no limit. A row without locations gives one (None) row: limited to nothing.
    limit = frozenset(pk for pk in rows if pk is not None) if rows else None
    setattr(user, _CACHE, limit)
    return limit


def within_limit(qs: QuerySet, *, limit: StoreLimit, fields: tuple[str, ...] = ("location",)):
    """`qs` narrowed to rows whose location (any of the foreign keys `fields`) is within the
    limit."""
    if limit is None:
        return qs
    allowed = Q()
    for field in fields:
        allowed |= Q(**{f"{field}_id__in": limit})
    return qs.filter(allowed)


def location_allowed(*, limit: StoreLimit, location_id: int | None) -> bool:
    return limit is None or location_id in limit


def locations_allowed(*, limit: StoreLimit) -> QuerySet[Location]:
    """The locations a staff member may pick: every one without a limit."""
    qs = Location.objects.order_by("code")
    return qs if limit is None else qs.filter(pk__in=limit)


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
    """The directory of locations. Staff see every location (a store-limited one too: names
    and addresses are public, and a transfer names its destination); a client sees those
    feeding its channel and its own."""
    qs = Location.objects.order_by("code")
    if client is not None:
        qs = qs.filter(
            Q(feeds__channel_id=client.channel_id) | Q(pk=client.till_location_id)
        ).distinct()
    return qs


def _outside_limit(code: str) -> LocationForbidden:
    return LocationForbidden(
        "Your staff account is limited to other stores than this one.", location=code
    )


def location_named(*, code: str) -> Location:
    """The location with that code, whoever asks; unknown is 400 `unknown_location`. For a
    location an act only names, as a transfer's destination: the caller changes no stock
    there by naming it."""
    location = Location.objects.filter(code=code).first()
    if location is None:
        raise UnknownLocation(location=code)
    return location


def location_for_read(*, client: ApiClient | None, code: str, limit: StoreLimit = None) -> Location:
    """A location the caller may read; unknown is 400, outside the client's scope or the
    staff member's store limit 403."""
    location = location_named(code=code)
    if client is not None and not location_list(client=client).filter(pk=location.pk).exists():
        raise LocationForbidden(location=code)
    if not location_allowed(limit=limit, location_id=location.pk):
        raise _outside_limit(code)
    return location


def location_for_write(
    *, client: ApiClient | None, code: str, limit: StoreLimit = None
) -> Location:
    """A location the caller may change stock at: a POS client only its own store, a
    store-limited staff member only the stores of the limit."""
    location = location_named(code=code)
    if client is not None and client.till_location_id != location.pk:
        raise LocationForbidden(location=code)
    if not location_allowed(limit=limit, location_id=location.pk):
        raise _outside_limit(code)
    return location
