import socket

from celery import shared_task

from . import services
from .idempotency import idempotency_records_purge


@shared_task(ignore_result=True)
def record_worker_heartbeat() -> None:
    """Run by beat every few seconds; /healthz reads it to tell whether a worker is alive."""
    services.worker_heartbeat_record(hostname=socket.gethostname())


@shared_task(ignore_result=True)
def purge_idempotency_records() -> int:
    """Hourly: forget Idempotency-Key answers past their retention. Safe to run twice."""
    return idempotency_records_purge()
