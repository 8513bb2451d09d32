from celery import shared_task

from .availability import availability_sync_pending, sync_again_later, sync_idle
from .webhooks import TASK_SOFT_TIME_LIMIT, TASK_TIME_LIMIT, webhook_attempt, webhooks_due

BATCH = 1000


def _drain() -> int:
    """Consume the outbox until it is empty. A batch short of BATCH leaves nothing this task
    has to take: the rows it skipped are another worker's, and rows committed since are
    read by the sync the flag promises (see `availability.sync_soon`)."""
    total = 0
    while consumed := availability_sync_pending(limit=BATCH):
        total += consumed
        if consumed < BATCH:
            break
    return total


@shared_task(ignore_result=True, acks_late=True)
def sync_channel_availability() -> int:
    """Publish the stock changes in the outbox. Queued after a stock change, and by itself
    for the end of its window while sales keep coming; run by beat every few seconds as the
    sweeper. Idempotent; returns how many outbox rows it consumed."""
    total = _drain()
    if total and sync_again_later():
        return total
    sync_idle()
    return total + _drain()


@shared_task(
    ignore_result=True,
    acks_late=True,
    soft_time_limit=TASK_SOFT_TIME_LIMIT,
    time_limit=TASK_TIME_LIMIT,
)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt; on failure the next one is queued after the back-off delay. An attempt
    has its own deadline (webhooks.TIMEOUT_SECONDS); the time limits are a backstop, within
    the delivery's lease, after which the sweep sends it again."""
    delivery = webhook_attempt(delivery_id=delivery_id)
    if delivery is not None and delivery.status == delivery.Status.PENDING:
        deliver_webhook.apply_async((delivery_id,), eta=delivery.next_attempt_at)


@shared_task(ignore_result=True)
def sweep_webhooks() -> int:
    """Beat: re-send deliveries whose next attempt is due (a lost retry only waits)."""
    due = webhooks_due()
    for delivery_id in due:
        deliver_webhook.delay(delivery_id)
    return len(due)


@shared_task(ignore_result=True, acks_late=True)
def rebuild_channel_availability() -> int:
    """Recompute every stocked variant for every channel, now. Nothing queues it any more
    (a change of feeds or safety stock writes outbox rows, which the sweeper drains even
    when the broker was down); kept for messages queued before and for operators."""
    from .availability import availability_rebuild

    return availability_rebuild()
