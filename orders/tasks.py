from celery import shared_task

from .services import orders_expire_pickups


@shared_task(ignore_result=True, acks_late=True)
def expire_uncollected_pickups() -> int:
    """Hourly: release pickups nobody collected in time. Safe to run twice."""
    return orders_expire_pickups()
