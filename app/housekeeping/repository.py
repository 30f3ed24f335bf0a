"""Queries of housekeeping: uploads in use or expired, a tenant's usage, jobs due for removal."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from app.tables import ACTIVE, TERMINAL, Artifact, Dataset, Job, JobEvent, Model, WebhookDelivery

BATCH = 500
U = TypeVar("U", bound=Model | Dataset)


def jobs_using(session: Session, column: Any, row_id: str) -> list[str]:
    """Up to 5 queued or running jobs (sweeps themselves not counted) whose `column` is `row_id`."""
    query = select(Job.id).where(column == row_id, Job.status.in_(ACTIVE), Job.kind != "sweep").limit(5)
    return list(session.scalars(query))


def artifact(session: Session, artifact_id: str) -> Artifact | None:
    return session.get(Artifact, artifact_id)


def upload(session: Session, table: type[U], row_id: str) -> U | None:
    return session.get(table, row_id)


def remove_job(session: Session, job: Job, artifacts: Sequence[Artifact]) -> None:
    """Delete a job's rows: its artifacts, events and webhook deliveries, then the job itself."""
    for row in artifacts:
        session.delete(row)
    session.execute(delete(JobEvent).where(JobEvent.job_id == job.id))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.job_id == job.id))
    session.flush()
    session.delete(job)
    session.flush()


def job_bytes(session: Session, tenant_id: str) -> int:
    """Bytes of the files the tenant's jobs produced."""
    query = select(func.coalesce(func.sum(Artifact.bytes), 0)).where(
        Artifact.tenant_id == tenant_id, Artifact.job_id.is_not(None)
    )
    return int(session.scalar(query) or 0)


def count_uploads(session: Session, table: type[Model] | type[Dataset], tenant_id: str) -> int:
    """The tenant's models or datasets, deleted ones not counted."""
    query = select(func.count()).select_from(table).where(table.tenant_id == tenant_id, table.deleted_at.is_(None))
    return int(session.scalar(query) or 0)


def count_jobs(session: Session, tenant_id: str) -> int:
    """The tenant's jobs of every status, sweeps and their points alike."""
    return int(session.scalar(select(func.count()).select_from(Job).where(Job.tenant_id == tenant_id)) or 0)


def expired_uploads(session: Session, table: Any, cutoff: datetime | None, now: datetime) -> Sequence[Any]:
    """Up to 500 models or datasets not deleted yet, past their `expires_at` or created before `cutoff`."""
    due = [table.expires_at < now]
    if cutoff is not None:
        due.append(table.created_at < cutoff)
    return session.scalars(select(table).where(table.deleted_at.is_(None), or_(*due)).limit(BATCH)).all()


def jobs_due(session: Session, cutoff: datetime | None) -> Sequence[Job]:
    """Up to 500 stopped jobs (not sweep points) whose delete was requested or that finished before
    `cutoff`, locked for update (rows another sweep holds are skipped)."""
    due: list[ColumnElement[bool]] = [Job.delete_requested_at.is_not(None)]
    if cutoff is not None:
        due.append(Job.finished_at < cutoff)
    query = select(Job).where(Job.parent_id.is_(None), Job.status.in_(TERMINAL), or_(*due)).limit(BATCH)
    return session.scalars(query.with_for_update(skip_locked=True)).all()
