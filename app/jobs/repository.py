"""Queries of jobs, their artifacts and webhook deliveries, and of the workers."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app import pagination
from app.tables import Artifact, Dataset, Job, JobStatus, Model, Tenant, WebhookDelivery, Worker


def add(session: Session, job: Job) -> Job:
    session.add(job)
    session.flush()
    return job


def get(session: Session, tenant_id: str, job_id: str, lock: bool = False) -> Job | None:
    query = select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)
    return session.scalar(query.with_for_update() if lock else query)


def get_for_worker(session: Session, job_id: str, lock: bool = False) -> Job | None:
    """Workers are handed a job id by the queue and act for whichever tenant owns it."""
    query = select(Job).where(Job.id == job_id)
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def list_for(
    session: Session, tenant_id: str, status: str | None, cursor: str | None, limit: int, parent_id: str | None = None
) -> Sequence[Job]:
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if parent_id:
        query = query.where(Job.parent_id == parent_id)
    return session.scalars(pagination.page(query, Job, cursor, limit)).all()


def deliveries(session: Session, job_id: str) -> Sequence[WebhookDelivery]:
    return session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.job_id == job_id).order_by(WebhookDelivery.id)
    ).all()


def add_delivery(session: Session, delivery: WebhookDelivery) -> None:
    session.add(delivery)
    session.flush()


def artifact(session: Session, job_id: str, kind: str) -> Artifact | None:
    return session.scalar(select(Artifact).where(Artifact.job_id == job_id, Artifact.kind == kind))


def artifacts(session: Session, job_id: str) -> Sequence[Artifact]:
    """Every file the job produced, by name."""
    return session.scalars(select(Artifact).where(Artifact.job_id == job_id).order_by(Artifact.kind)).all()


def add_artifact(session: Session, artifact: Artifact) -> None:
    session.add(artifact)
    session.flush()


def running(session: Session) -> Sequence[Job]:
    """Running jobs a worker holds a lease on (a sweep is run by its points, not by a worker)."""
    query = select(Job).where(Job.status == JobStatus.RUNNING, Job.kind != "sweep")
    return session.scalars(query.with_for_update(skip_locked=True)).all()


def queued_before(session: Session, moment: datetime) -> Sequence[Job]:
    query = select(Job).where(Job.status == JobStatus.QUEUED, Job.kind != "sweep", Job.enqueued_at < moment)
    return session.scalars(query.with_for_update(skip_locked=True)).all()


def lock_tenant_of(session: Session, job_id: str) -> None:
    """Serialize job starts per tenant: a no-op write to the job's tenant row, as the first
    statement of the transaction, takes PostgreSQL's row lock and SQLite's write lock."""
    owner = select(Job.tenant_id).where(Job.id == job_id).scalar_subquery()
    session.execute(update(Tenant).where(Tenant.id == owner).values(name=Tenant.name))


def children(session: Session, parent_id: str, lock: bool = False) -> Sequence[Job]:
    """The points of a sweep, in the order they were submitted (locked for update with `lock`)."""
    query = select(Job).where(Job.parent_id == parent_id).order_by(Job.created_at, Job.id)
    return session.scalars(query.with_for_update() if lock else query).all()


def open_sweeps(session: Session) -> Sequence[Job]:
    return session.scalars(select(Job).where(Job.kind == "sweep", Job.status == JobStatus.RUNNING)).all()


def input_keys(session: Session, job: Job) -> tuple[str, str, str | None]:
    """The stored files a job runs on: its model's format and key, and its uploaded dataset's key (None for
    a built-in one)."""
    model = session.get(Model, job.model_id)
    assert model is not None
    model_key = session.get(Artifact, model.artifact_id).storage_key  # type: ignore[union-attr]
    data_key = None
    if job.dataset_id and not job.dataset_id.startswith("builtin:"):
        dataset = session.get(Dataset, job.dataset_id)
        assert dataset is not None
        data_key = session.get(Artifact, dataset.artifact_id).storage_key  # type: ignore[union-attr]
    return model.format, model_key, data_key


def queues_served_since(session: Session, moment: datetime) -> set[str]:
    """The queues of the workers whose heartbeat is at or after `moment`."""
    served: set[str] = set()
    for queues in session.scalars(select(Worker.queues).where(Worker.heartbeat_at >= moment)):
        served.update(q for q in queues.split(",") if q)
    return served


def count_in(session: Session, tenant_id: str, status: str) -> int:
    """The tenant's jobs in `status`, sweeps themselves not counted (their points are)."""
    query = select(func.count()).where(Job.tenant_id == tenant_id, Job.status == status, Job.kind != "sweep")
    return int(session.scalar(query) or 0)


def register_worker(session: Session, worker_id: str, queues: str, now: datetime, forget_before: datetime) -> None:
    """Say the worker is alive (a new row, or its heartbeat); forget workers silent since `forget_before`."""
    row = session.get(Worker, worker_id)
    if row is None:
        session.add(Worker(id=worker_id, queues=queues, started_at=now, heartbeat_at=now))
    else:
        row.heartbeat_at = now
    session.execute(delete(Worker).where(Worker.heartbeat_at < forget_before))


def unregister_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(Worker).where(Worker.id == worker_id))


def count_by_status(session: Session) -> dict[str, int]:
    """Jobs of every tenant by status, sweeps themselves not counted (their points are)."""
    query = select(Job.status, func.count()).where(Job.kind != "sweep").group_by(Job.status)
    return {status: int(n) for status, n in session.execute(query).all()}


def recent_results(session: Session, limit: int) -> Sequence[dict[str, Any] | None]:
    """The results of the last `limit` succeeded jobs (sweeps themselves not counted), newest first."""
    query = (
        select(Job.result)
        .where(Job.status == JobStatus.SUCCEEDED, Job.kind != "sweep")
        .order_by(Job.finished_at.desc())
        .limit(limit)
    )
    return session.scalars(query).all()


def workers(session: Session) -> Sequence[Worker]:
    return session.scalars(select(Worker)).all()
