"""GET /healthz: the state of the database, the broker and the worker, for probes and humans."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return "ok"
    except Exception:  # any driver error means "down" to a probe
        return "down"


def _broker() -> str:
    from omnichannel.celery import app

    try:
        with app.connection_for_write() as conn:
            # One try, no pause before a retry (kombu's first is 2 s): a probe's answer
            # within its own timeout; the broker's socket timeouts bound the try.
            conn.ensure_connection(max_retries=0, timeout=1)
        return "ok"
    except Exception:
        return "down"


def _worker(database: str) -> dict:
    if database != "ok":
        return {"status": "unknown"}
    from .models import WorkerHeartbeat

    latest = WorkerHeartbeat.objects.order_by("-seen_at").first()
    if latest is None:
        return {"status": "unknown", "last_seen": None}
    age = timezone.now() - latest.seen_at
    fresh = age <= timedelta(seconds=settings.WORKER_HEARTBEAT_MAX_AGE_SECONDS)
    return {"status": "ok" if fresh else "stale", "last_seen": latest.seen_at.isoformat()}


@never_cache
@require_safe  # GET, and HEAD for the load balancers and probes that send it
def healthz(request) -> JsonResponse:
    database = _database()
    body = {
        "status": "ok" if database == "ok" else "down",
        "database": database,
        "broker": _broker(),
        "worker": _worker(database),
    }
    return JsonResponse(body, status=200 if database == "ok" else 503)
