from celery import shared_task

from .services import points_expire, tiers_recompute


@shared_task(ignore_result=True, acks_late=True)
def expire_points() -> int:
    """Nightly: expire unspent points past the period. Safe to run twice."""
    return points_expire()


@shared_task(ignore_result=True, acks_late=True)
def recompute_tiers() -> int:
    """Nightly: tiers from trailing 12-month spend. Safe to run twice."""
    return tiers_recompute()
