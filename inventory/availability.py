"""Channel availability: the read model every channel publishes, and how it is kept in sync.

A stock change writes `AvailabilityOutbox` rows in its own transaction and, once committed,
queues `sync_channel_availability`. The task claims outbox rows (SKIP LOCKED, so workers share
the work), recomputes those variants for every channel and deletes the rows, in one
transaction. A lone sale syncs at once; under load one sync runs per
AVAILABILITY_SYNC_WINDOW_MS and publishes every sale of the window together. Beat runs the
same task every few seconds as a sweeper, so a lost message, a broker outage or a killed
worker only delays convergence. Recomputing is a pure function of current stock, so running
it twice is harmless.
"""

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable

from django.db import connection, transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from omnichannel.compiled import CompiledQuery, bulk_insert
from omnichannel.models import ChannelLocation

from .models import AvailabilityOutbox, ChannelAvailability, StockLevel
from .webhooks import webhooks_record

log = logging.getLogger(__name__)

ADVISORY_NAMESPACE = 7301  # pg_advisory_xact_lock(namespace, variant_id)


def outbox_record(*, variant_ids: Iterable[int]) -> None:
    """Called inside a stock-changing transaction: remember the variants, sync on commit."""
    ids = sorted(set(variant_ids))
    if not ids:
        return
    bulk_insert([AvailabilityOutbox(variant_id=v) for v in ids])
    if not _held:  # else `syncs_held` queues one when the command is done
        transaction.on_commit(sync_soon, robust=True)


SYNC_PENDING_KEY = "inventory:availability-sync-pending"
SYNC_PENDING_TTL_MS = 5000
KICK_PAUSE_SECONDS = 5.0  # beat's sweeper interval: a skipped kick waits no longer than that
_client = None
_kick_paused_until = 0.0  # time.monotonic() before which commits do not try the broker
_held = False  # set by `syncs_held` (a bulk command): commits queue no sync meanwhile


def _redis():
    from django.conf import settings

    if not settings.REDIS_URL:
        return None
    global _client
    if _client is None:
        import redis

        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)
    return _client


def sync_soon() -> None:
    """After a commit: queue a sync unless the flag says one will read the outbox later.

    The flag's rule: while it is set, some sync is queued or running that reads the outbox
    again after this moment. Whoever sets it (a commit here, or a sync queuing the next one
    for the end of its window) queues that sync; a sync gives it up only before its last
    read (see `sync_idle`). A commit that finds it set committed its row before, so that
    read sees the row. A burst of sales costs one message instead of one each. Without Redis
    (or if it fails) always send.

    Runs after the sale committed, in the request: it must never fail the request nor make
    it wait. If the broker is down the message is dropped with a warning (the outbox row
    waits for beat's sweeper) and, for KICK_PAUSE_SECONDS, later commits do not even try,
    so a broker outage costs one publish timeout per process and pause, not one per sale.
    """
    if _held or time.monotonic() < _kick_paused_until:
        return
    client = _redis()
    try:
        if client is not None and not client.set(
            SYNC_PENDING_KEY, 1, nx=True, px=SYNC_PENDING_TTL_MS
        ):
            return
    except Exception:
        log.warning("availability debounce flag unavailable; sending the sync anyway")
    _send_sync()


@contextlib.contextmanager
def syncs_held():
    """For a command writing many orders in one process (seed_demo): its commits queue no
    sync each (without Redis there is no debounce flag, and the demo's thousand orders left
    thousands of messages for the worker, ahead of beat's heartbeat); one sync is queued at
    the end, and the outbox holds every change until then. Not for web or worker processes."""
    global _held
    _held = True
    try:
        yield
    finally:
        _held = False
        sync_soon()


def _send_sync(countdown: float | None = None) -> bool:
    global _kick_paused_until
    from .tasks import sync_channel_availability

    try:
        sync_channel_availability.apply_async(countdown=countdown)
    except BrokerUnavailable as exc:  # refused, timed out, reset: Celery raises this for all
        _kick_paused_until = time.monotonic() + KICK_PAUSE_SECONDS
        log.warning(
            "availability sync not queued (%s: %s); the outbox keeps the change and beat's "
            "sweeper publishes it; not retrying for %s s",
            type(exc).__name__,
            exc,
            KICK_PAUSE_SECONDS,
        )
        return False
    return True


def sync_again_later() -> bool:
    """Called by the task after it published stock changes: keep the flag and queue the next
    sync for the end of AVAILABILITY_SYNC_WINDOW_MS, so the sales committed in between queue
    nothing of their own and are published together by that one. Returns whether it did;
    if not (no window, no Redis, no broker), the task gives the flag up itself."""
    from django.conf import settings

    window = settings.AVAILABILITY_SYNC_WINDOW_MS
    client = _redis()
    if not window or client is None:
        return False
    try:
        client.set(SYNC_PENDING_KEY, 1, px=SYNC_PENDING_TTL_MS + window)
    except Exception:
        return False
    return _send_sync(countdown=window / 1000)


def sync_idle() -> None:
    """Called by the task when it found nothing more, or queued no next sync: give the flag
    up, then the task reads the outbox once more (a commit that found the flag set just
    before queued nothing); commits after this queue their own sync."""
    client = _redis()
    if client is None:
        return
    try:
        client.delete(SYNC_PENDING_KEY)
    except Exception:
        log.warning("could not clear the availability debounce flag; it expires by itself")


def _lock_variants(variant_ids: list[int]) -> None:
    """Serialise recomputes of one variant: the later one reads stock after the earlier
    committed, so an older figure never overwrites a newer one."""
    if connection.vendor != "postgresql" or not variant_ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, v) FROM unnest(%s::int[]) AS v ORDER BY v",
            [ADVISORY_NAMESPACE, variant_ids],
        )


# The reads of every sync, compiled once per process (omnichannel/compiled.py): building
# them with the ORM cost more CPU than a small sync's work.
_FEEDS = CompiledQuery(
    lambda: ChannelLocation.objects.order_by(
        "channel_id", "priority", "location__code"
    ).values_list("channel_id", "location_id", "safety_stock", "location__code", "location__pickup")
)
_LEVELS = CompiledQuery(
    lambda variant_ids: (
        StockLevel.objects.filter(variant_id__in=variant_ids)
        .order_by()
        .values_list("variant_id", "location_id", "on_hand", "reserved")
    )
)
_PUBLISHED = CompiledQuery(
    lambda variant_ids: (
        ChannelAvailability.objects.filter(variant_id__in=variant_ids)
        .order_by()
        .values_list("channel_id", "variant_id", "available", "locations")
    )
)


def availability_recompute(*, variant_ids: Iterable[int]) -> list[ChannelAvailability]:
    """Recompute these variants for every channel and store what changed; returns the rows
    whose published `available` or breakdown changed (for webhooks)."""
    ids = sorted(set(variant_ids))
    if not ids:
        return []
    _lock_variants(ids)
    levels = {
        (variant_id, location_id): on_hand - reserved
        for variant_id, location_id, on_hand, reserved in _LEVELS.rows(ids)
    }
    feeds_by_channel = defaultdict(list)
    for channel_id, location_id, safety_stock, code, pickup in _FEEDS.rows():
        feeds_by_channel[channel_id].append((location_id, safety_stock, code, pickup))
    current = {
        (channel_id, variant_id): (available, locations)
        for channel_id, variant_id, available, locations in _PUBLISHED.rows(ids)
    }
    for channel_id, _ in current:
        # A channel that published these variants and has lost its last feed sells nothing
        # of them now: it is recomputed too (to 0), not left showing the old figures.
        feeds_by_channel.setdefault(channel_id, [])
    now = timezone.now()
    changed = []
    for channel_id, channel_feeds in feeds_by_channel.items():
        for variant_id in ids:
            breakdown = []
            for location_id, safety_stock, code, pickup in channel_feeds:
                sellable = max(0, levels.get((variant_id, location_id), 0) - safety_stock)
                breakdown.append({"location": code, "available": sellable, "pickup": pickup})
            total = sum(item["available"] for item in breakdown)
            if current.get((channel_id, variant_id)) == (total, breakdown):
                continue
            changed.append(
                ChannelAvailability(
                    channel_id=channel_id,
                    variant_id=variant_id,
                    available=total,
                    locations=breakdown,
                    as_of=now,
                )
            )
    if changed:
        ChannelAvailability.objects.bulk_create(
            changed,
            update_conflicts=True,
            unique_fields=["channel", "variant"],
            update_fields=["available", "locations", "as_of"],
        )
        webhooks_record(changed=changed)
    return changed


@transaction.atomic
def availability_sync_pending(*, limit: int = 1000) -> int:
    """Consume up to `limit` outbox rows: recompute their variants, delete the rows.
    Returns how many rows were consumed. Safe to run concurrently and twice."""
    claimed = list(
        AvailabilityOutbox.objects.select_for_update(skip_locked=True)
        .order_by("id")
        .values_list("id", "variant_id")[:limit]
    )
    if not claimed:
        return 0
    availability_recompute(variant_ids=[variant_id for _, variant_id in claimed])
    AvailabilityOutbox.objects.filter(id__in=[row_id for row_id, _ in claimed]).delete()
    return len(claimed)


def availability_rebuild(*, batch: int = 2000, progress=None) -> int:
    """Recompute every stocked variant now (after seeding; a change of feeds or safety stock
    goes through the outbox, `outbox_record_stocked`)."""
    variant_ids = list(StockLevel.objects.values_list("variant_id", flat=True).distinct())
    for start in range(0, len(variant_ids), batch):
        with transaction.atomic():
            availability_recompute(variant_ids=variant_ids[start : start + batch])
        if progress:
            progress(min(start + batch, len(variant_ids)), len(variant_ids))
    return len(variant_ids)


def outbox_record_stocked() -> int:
    """Inside a transaction that changed what channels publish of every variant (a feed, its
    safety stock, a location): every stocked variant into the outbox, in one INSERT ...
    SELECT however large the catalog, synced on commit like a stock change. The rows are
    the record that the work is owed: a rebuild task queued on commit was dropped with the
    broker down, and nothing swept for it; beat's sweeper drains these. Returns the rows."""
    outbox = connection.ops.quote_name(AvailabilityOutbox._meta.db_table)
    levels = connection.ops.quote_name(StockLevel._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {outbox} (variant_id, created_at) "
            f"SELECT DISTINCT variant_id, %s FROM {levels}",
            [connection.ops.adapt_datetimefield_value(timezone.now())],
        )
        added = cursor.rowcount
    if added and not _held:
        transaction.on_commit(sync_soon, robust=True)
    return added


def feeds_changed(sender=None, **kwargs) -> None:
    """Signal receiver: a feed, safety stock or location changed; republish everything."""
    if kwargs.get("raw"):  # loading fixtures
        return
    outbox_record_stocked()
