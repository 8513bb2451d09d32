from celery import shared_task

from .availability import availability_sync_pending, sync_started
from .webhooks import webhook_attempt, webhooks_due

BATCH = 1000


@shared_task(ignore_result=True, acks_late=True)
def sync_channel_availability() -> int:
    """Consume the availability outbox until it is empty. Queued after every stock change
    and run by beat every few seconds as the sweeper; idempotent."""
    sync_started()
    total = 0
    while consumed := availability_sync_pending(limit=BATCH):
        total += consumed
    return total


@shared_task(ignore_result=True, acks_late=True)
def deliver_webhook(delivery_id: int) -> None:
    """One attempt; on failure the next one is queued after the back-off delay."""
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
    """Recompute every stocked variant for every channel (feeds or safety stock changed)."""
    from .availability import availability_rebuild

    return availability_rebuild()
