"""The Celery app: workers and beat read their configuration from Django settings (CELERY_*)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "omnichannel.settings")

app = Celery("omnichannel")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# A task's database connection lives as a request's does. Celery's Django fix-up closes the
# connection before and after every task (whatever CONN_MAX_AGE says) unless
# CELERY_DB_REUSE_MAX is set: a new PostgreSQL session (a backend forked, its caches cold)
# for every availability sync, about 7 ms of its lag in `make bench`. Settings set that
# number, and these handlers do what Django does around a request: close the connection if
# it is older than CONN_MAX_AGE, broken (errors, or a failed health check with
# CONN_HEALTH_CHECKS), or left in a transaction. An eager task runs inside its caller's
# request or transaction: its connection is the caller's, not the task's to close.
def _close_old_connections(sender=None, **kwargs) -> None:
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


task_prerun.connect(_close_old_connections, weak=False)
task_postrun.connect(_close_old_connections, weak=False)
