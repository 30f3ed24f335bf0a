"""What the job routes answer (the job spec they take is the contract's: `contract.spec.JobSpec`)."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.tables import Job, StatusName


class JobError(BaseModel):
    code: str
    message: str

    @staticmethod
    def of(job: Job) -> dict[str, Any] | None:
        """The job's error as the API shows it, or None."""
        return {"code": job.error_code, "message": job.error_message} if job.error_code else None


class JobOut(BaseModel):
    id: str
    kind: str
    status: StatusName
    stage: str | None
    progress: float
    attempts: int
    error: JobError | None
    result: dict[str, Any] | None
    model_id: str
    dataset_id: str | None
    spec: dict[str, Any]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested: bool
    parent_id: str | None = Field(None, description="the sweep this job is one point of")

    @classmethod
    def from_row(cls, job: Job) -> dict[str, Any]:
        """The job as the API answers it (validated against this model by the route's response_model)."""
        return {
            "id": job.id,
            "kind": job.kind,
            "status": job.status,
            "stage": job.stage,
            "progress": round(job.progress, 4),
            "attempts": job.attempts,
            "error": JobError.of(job),
            "result": job.result,
            "model_id": job.model_id,
            "dataset_id": job.dataset_id,
            "spec": job.spec,
            "created_at": job.created_at,
            "started_at": job.started_at,
            "finished_at": job.finished_at,
            "cancel_requested": job.cancel_requested_at is not None,
            "parent_id": job.parent_id,
        }


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class Delivery(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    attempt: int
    status_code: int | None
    succeeded: bool
    error: str | None
    created_at: datetime


class DeliveryList(BaseModel):
    items: list[Delivery]


class ArtifactUrl(BaseModel):
    url: str = Field(description="a presigned GET of the file, usable without an API key until it expires")
    expires_in: int = Field(description="seconds the URL stays valid")


class ArtifactOut(BaseModel):
    name: str = Field(description="download it with GET /v1/jobs/{job_id}/artifacts/{name}")
    bytes: int
    sha256: str
    media_type: str


class ArtifactList(BaseModel):
    items: list[ArtifactOut]
