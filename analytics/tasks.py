from datetime import date

from celery import shared_task
from django.db import InterfaceError, OperationalError, connection

from .jobs import last_finished_day, nightly_run

# A run the database broke off (a lost connection, a failover, a lock conflict it ended)
# is tried again this much later, twice at most: each try is recorded, and one that
# succeeds replaces the night's figures as the first would have (a date's run is
# idempotent). Without it the managers had no figures until the next night.
RETRY_AFTER_SECONDS = 300
RETRIES = 2


@shared_task(ignore_result=True, acks_late=True, bind=True, max_retries=RETRIES)
def run_nightly_jobs(self, run_date: str | None = None) -> int:
    """Each night: RFM, segments, cohorts (and CLV). Idempotent per date. A retry counts
    the same day as the first try, even when it runs after midnight."""
    day = date.fromisoformat(run_date) if run_date else last_finished_day()
    try:
        return nightly_run(run_date=day).pk
    except (OperationalError, InterfaceError) as exc:  # InterfaceError: a connection lost
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()  # the retry starts on a new one
        raise self.retry(
            exc=exc, countdown=RETRY_AFTER_SECONDS, kwargs={"run_date": day.isoformat()}
        ) from exc
