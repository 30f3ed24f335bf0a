"""Database tables. Every row that a caller can see carries its tenant's id."""

import secrets
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


def now() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tn"))
    name: Mapped[str] = mapped_column(String(200), unique=True)
    webhook_secret: Mapped[str] = mapped_column(String(64), default=lambda: secrets.token_hex(32))
    """Signs this tenant's webhook deliveries (HMAC-SHA256)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    """sha256 of the key; the key itself is shown once and never stored."""
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Artifact(Base):
    """A file in the artifact store: an upload or something a job produced."""

    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("art"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(
        ForeignKey("jobs.id", use_alter=True, name="fk_artifacts_job_id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    storage_key: Mapped[str] = mapped_column(String(400), unique=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Model(Base):
    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mdl"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    filename: Mapped[str] = mapped_column(String(255))
    format: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    params: Mapped[int | None] = mapped_column(BigInteger)
    input_shape: Mapped[list[Any] | None] = mapped_column(JSON)
    output_shape: Mapped[list[Any] | None] = mapped_column(JSON)
    layers: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the retention sweep deletes it (the upload's `expires_in`); None: kept (or SHEARS_RETENTION_DAYS)."""
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when deleted: its file is gone; the row stays because finished jobs name it."""


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ds"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    artifact_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"))
    filename: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    arrays: Mapped[dict[str, Any]] = mapped_column(JSON)
    """Shape and dtype of each array, read from the .npy headers."""
    task: Mapped[str] = mapped_column(String(20))
    format: Mapped[str] = mapped_column(String(20), default="npz", server_default="npz")
    """What was uploaded: npz, images, audio or csv (stored converted to an uncompressed .npz)."""
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    """The upload check's answer: samples, classes, shape, dtype, bytes, skipped, scale/offset, front end."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When the retention sweep deletes it (the upload's `expires_in`); None: kept (or SHEARS_RETENTION_DAYS)."""
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set when deleted: its file is gone; the row stays because finished jobs name it."""


class JobStatus(StrEnum):
    """A job's status (the API's `status`); stored as its value."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


TERMINAL = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# The same values as a type, for the API's schema (an inline enum, as clients have always seen it);
# tests/api/test_openapi.py holds the two together.
StatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"))
    dataset_id: Mapped[str | None] = mapped_column(String(64))
    """A dataset row's id, or `builtin:<name>`."""
    kind: Mapped[str] = mapped_column(String(20))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True, default=JobStatus.QUEUED)
    stage: Mapped[str | None] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(60))
    error_message: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    """A summary of the report: the headline figures a pipeline checks."""
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """When its task was last sent: a job queued long after this may have lost its message."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """Set by the worker running the job, every few seconds; a stale one means the worker died."""
    owner: Mapped[str | None] = mapped_column(String(200))
    """`host:pid` of the worker process running the job."""
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    """The sweep this job is one point of."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now, onupdate=now)
    delete_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    """DELETE on a running job: it is cancelled, and deleted by the housekeeping sweep once it has stopped."""


class JobEvent(Base):
    """What happened to a job, in order: stage changes, progress, log lines, the final state."""

    __tablename__ = "job_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    type: Mapped[str] = mapped_column(String(20))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class IdempotencyKey(Base):
    """The first response to a request made with an `Idempotency-Key`, replayed on retries."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "route", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    route: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class WebhookDelivery(Base):
    """One attempt to POST a finished job to its `callback_url`."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    url: Mapped[str] = mapped_column(String(2000))
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    succeeded: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class Worker(Base):
    """A running `shears worker`: which queues it serves, and when it was last heard from."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    """`host:pid` of the worker's main process."""
    queues: Mapped[str] = mapped_column(String(500))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime, default=now)


class EndedSession(Base):
    """A dashboard session logged out before it expired: its token is refused from then on."""

    __tablename__ = "ended_sessions"

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    """The token's HMAC (not secret on its own: it cannot be turned back into a token)."""
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
