"""Per-tenant quotas: over one, the caller gets 429 with `Retry-After`."""

from sqlalchemy.orm import Session

from app.datasets import repository as datasets
from app.errors import TooManyRequests
from app.jobs import repository as jobs
from app.models import repository as models
from app.settings import Settings
from app.tables import JobStatus


def check_upload(session: Session, tenant_id: str, incoming: int, settings: Settings) -> None:
    used = models.stored_bytes(session, tenant_id) + datasets.stored_bytes(session, tenant_id)
    if used + incoming > settings.quota_upload_bytes:
        raise TooManyRequests(
            f"upload quota: {used} of {settings.quota_upload_bytes} bytes used, this upload needs {incoming}",
            retry_after=3600,
        )


def jobs_in(session: Session, tenant_id: str, status: str) -> int:
    """Jobs that hold (or wait for) a worker; a sweep itself does not, its points do."""
    return jobs.count_in(session, tenant_id, status)


def check_submit(session: Session, tenant_id: str, settings: Settings, incoming: int = 1) -> None:
    queued = jobs_in(session, tenant_id, JobStatus.QUEUED)
    if queued + incoming > settings.quota_queued_jobs:
        raise TooManyRequests(
            f"queue quota: {queued} jobs already queued (at most {settings.quota_queued_jobs})", retry_after=30
        )


def may_start(session: Session, tenant_id: str, settings: Settings) -> bool:
    """Whether the tenant has a free running slot (a job past it waits in the queue)."""
    return jobs_in(session, tenant_id, JobStatus.RUNNING) < settings.quota_running_jobs
