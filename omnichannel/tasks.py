import socket

from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def record_worker_heartbeat() -> None:
    """Run by beat every few seconds; /healthz reads it to tell whether a worker is alive."""
    services.worker_heartbeat_record(hostname=socket.gethostname())
