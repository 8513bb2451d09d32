from celery import shared_task

from .jobs import nightly_run


@shared_task(ignore_result=True, acks_late=True)
def run_nightly_jobs() -> int:
    """Each night: RFM, segments, cohorts (and CLV). Idempotent per date."""
    return nightly_run().pk
