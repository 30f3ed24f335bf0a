"""Thin tasks: load a job by id, call the engine, record the result."""

from typing import Any

from sqlalchemy.exc import OperationalError

from app.settings import get_settings
from app.storage import StorageUnavailable
from workers.celery_app import celery_app
from workers.pipeline import WaitForSlot, execute
from workers.sweeps import collect
from workers.webhooks import deliver

# How long a job whose tenant is at its running-jobs quota waits before it asks again.
SLOT_RETRY_S = 10


# While the database (or the artifact store) is unreachable a job is neither started nor failed: the task waits.
DB_RETRY_S = 5


@celery_app.task(name="jobs.run", bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def run_job(self: Any, job_id: str) -> None:
    try:
        execute(job_id)
    except WaitForSlot as exc:
        raise self.retry(countdown=SLOT_RETRY_S) from exc
    except (OperationalError, StorageUnavailable) as exc:
        raise self.retry(countdown=DB_RETRY_S) from exc


@celery_app.task(name="webhooks.deliver", bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self: Any, job_id: str) -> None:
    """POST the finished job to its callback URL; retry with exponential backoff on failure."""
    attempts = get_settings().webhook_attempts
    if not deliver(job_id) and self.request.retries + 1 < attempts:
        raise self.retry(countdown=2 ** (self.request.retries + 1))


@celery_app.task(name="sweeps.collect", bind=True, acks_late=True, max_retries=None)
def collect_sweep(self: Any, sweep_id: str) -> None:
    """End a sweep whose points are all done (a no-op while some still run)."""
    try:
        collect(sweep_id)
    except (OperationalError, StorageUnavailable) as exc:
        raise self.retry(countdown=DB_RETRY_S) from exc
