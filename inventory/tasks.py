from celery import shared_task

from .availability import availability_sync_pending

BATCH = 1000


@shared_task(ignore_result=True, acks_late=True)
def sync_channel_availability() -> int:
    """Consume the availability outbox until it is empty. Queued after every stock change
    and run by beat every few seconds as the sweeper; idempotent."""
    total = 0
    while consumed := availability_sync_pending(limit=BATCH):
        total += consumed
    return total
