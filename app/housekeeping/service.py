"""Housekeeping: deleting uploads and jobs (their files too), usage against the quotas, retention.

A deleted model or dataset keeps its row (finished jobs name it) with `deleted_at` set, and its
file is removed from the store; a deleted job is removed with its events, deliveries and files.
Store deletes run after the transaction commits, so a rolled-back delete loses no file.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app import quotas
from app.datasets import repository as datasets
from app.db import after_commit
from app.errors import Conflict, InvalidInput, NotFound
from app.housekeeping import repository
from app.jobs import lifecycle
from app.jobs import repository as jobs
from app.jobs import service as job_service
from app.models import repository as models
from app.settings import Settings
from app.storage import ArtifactStore
from app.tables import TERMINAL, Dataset, Job, JobStatus, Model

MAX_EXPIRES_IN_S = 10 * 365 * 24 * 3600
EXPIRES_HELP = "seconds until the housekeeping sweep deletes the upload (unless a job still uses it)"


def _delete_files(session: Session, store: ArtifactStore, keys: list[str]) -> None:
    def remove() -> None:
        for key in keys:
            store.delete(key)

    if keys:
        after_commit(session, remove)


def _tombstone(session: Session, store: ArtifactStore, row: Model | Dataset) -> None:
    row.deleted_at = datetime.now(UTC)
    artifact = repository.artifact(session, row.artifact_id)
    if artifact is not None:
        # The file, then its folder (`{tenant}/models/{id}`) when the upload made one.
        folder = artifact.storage_key.rpartition("/")[0]
        _delete_files(session, store, [artifact.storage_key, *([folder] if folder.endswith(f"/{row.id}") else [])])


def delete_model(session: Session, tenant_id: str, model_id: str, store: ArtifactStore) -> None:
    _delete_upload(session, store, "model", models.get(session, tenant_id, model_id), Job.model_id, model_id)


def delete_dataset(session: Session, tenant_id: str, dataset_id: str, store: ArtifactStore) -> None:
    row = datasets.get(session, tenant_id, dataset_id)
    _delete_upload(session, store, "dataset", row, Job.dataset_id, dataset_id)


def _delete_upload(session: Session, store: ArtifactStore, kind: str, row: Any, column: Any, row_id: str) -> None:
    """Tombstone an upload and remove its files; 404 when absent, 409 while a live job uses it."""
    if row is None:
        raise NotFound(f"no {kind} {row_id!r}")
    users = repository.jobs_using(session, column, row_id)
    if users:
        raise Conflict(
            f"{kind} {row_id} is used by queued or running job(s) {', '.join(users)}: cancel or delete them first",
            code=f"{kind}_in_use",
        )
    _tombstone(session, store, row)


def _remove_job(session: Session, job: Job, store: ArtifactStore) -> None:
    """Remove a stopped job (and a sweep's points) with everything it produced."""
    for point in jobs.children(session, job.id):
        _remove_job(session, point, store)
    artifacts = jobs.artifacts(session, job.id)
    # Its folder last: it holds the files, and a checkpoint a crashed attempt may have left.
    _delete_files(session, store, [*(a.storage_key for a in artifacts), f"{job.tenant_id}/jobs/{job.id}"])
    repository.remove_job(session, job, artifacts)


def delete_job(session: Session, tenant_id: str, job_id: str, store: ArtifactStore) -> Job | None:
    """None when the job is gone now; the job when it was running and is deleted once it stops."""
    job = job_service.get_job(session, tenant_id, job_id, lock=True)
    if job.parent_id is not None:
        raise Conflict(f"job {job_id} is a point of the sweep {job.parent_id}: delete the sweep", code="part_of_sweep")
    if job.status not in TERMINAL:
        lifecycle.cancel(session, tenant_id, job_id)
    if job.status in TERMINAL and (job.kind != "sweep" or not _sweep_busy(session, job)):
        _remove_job(session, job, store)
        return None
    job.delete_requested_at = datetime.now(UTC)
    return job


def _sweep_busy(session: Session, sweep: Job) -> bool:
    return any(point.status not in TERMINAL for point in jobs.children(session, sweep.id))


def set_expiry(session: Session, table: type[Model] | type[Dataset], row_id: str, expires_in: int) -> datetime:
    if not 0 < expires_in <= MAX_EXPIRES_IN_S:
        raise InvalidInput(f"expires_in must be 1 to {MAX_EXPIRES_IN_S} seconds", code="invalid_request")
    row = repository.upload(session, table, row_id)
    assert isinstance(row, Model | Dataset)
    expires_at = datetime.now(UTC) + timedelta(seconds=expires_in)
    row.expires_at = expires_at
    return expires_at


def usage(session: Session, tenant_id: str, settings: Settings) -> dict[str, Any]:
    uploads = models.stored_bytes(session, tenant_id) + datasets.stored_bytes(session, tenant_id)
    produced = repository.job_bytes(session, tenant_id)
    return {
        "bytes_stored": uploads + produced,
        "upload_bytes": uploads,
        "job_bytes": produced,
        "models": repository.count_uploads(session, Model, tenant_id),
        "datasets": repository.count_uploads(session, Dataset, tenant_id),
        "jobs": repository.count_jobs(session, tenant_id),
        "jobs_queued": quotas.jobs_in(session, tenant_id, JobStatus.QUEUED),
        "jobs_running": quotas.jobs_in(session, tenant_id, JobStatus.RUNNING),
        "limits": {
            "upload_bytes": settings.quota_upload_bytes,
            "max_upload_bytes": settings.max_upload_bytes,
            "queued_jobs": settings.quota_queued_jobs,
            "running_jobs": settings.quota_running_jobs,
            "retention_days": settings.retention_days or None,
        },
    }


def sweep(session: Session, settings: Settings, store: ArtifactStore) -> list[str]:
    """One round of retention: expired uploads not in use, old finished jobs, and running jobs whose
    delete waited for them to stop. Returns the ids removed."""
    now = datetime.now(UTC)
    cutoff = now - timedelta(days=settings.retention_days) if settings.retention_days else None
    removed = []
    for table, column in ((Model, Job.model_id), (Dataset, Job.dataset_id)):
        for row in repository.expired_uploads(session, table, cutoff, now):
            if not repository.jobs_using(session, column, row.id):
                _tombstone(session, store, row)
                removed.append(row.id)
    for job in repository.jobs_due(session, cutoff):
        if job.kind != "sweep" or not _sweep_busy(session, job):
            removed.append(job.id)
            _remove_job(session, job, store)
    return removed
