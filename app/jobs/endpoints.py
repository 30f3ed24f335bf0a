from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, Response

from app.api.deps import CurrentTenant, SessionDep, StoreDep
from app.api.docs import ERRORS
from app.errors import Conflict, NotFound
from app.jobs import repository, service
from app.jobs.schemas import JobList, JobOut, JobSpec

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

Status = Literal["queued", "running", "succeeded", "failed", "cancelled"]


@router.post("", status_code=202, response_model=JobOut, responses=ERRORS)
def submit_job(spec: JobSpec, session: SessionDep, tenant: CurrentTenant) -> Any:
    """Queue a job; poll `GET /v1/jobs/{id}` until its status is terminal."""
    return service.to_out(service.create_job(session, tenant.id, spec))


@router.get("", response_model=JobList, responses=ERRORS)
def list_jobs(
    session: SessionDep, tenant: CurrentTenant, status: Status | None = None, limit: int = Query(50, ge=1, le=500)
) -> Any:
    return {"items": [service.to_out(j) for j in repository.list_for(session, tenant.id, status, limit)]}


@router.get("/{job_id}", response_model=JobOut, responses=ERRORS)
def get_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return service.to_out(service.get_job(session, tenant.id, job_id))


@router.post("/{job_id}/cancel", response_model=JobOut, responses=ERRORS)
def cancel_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return service.to_out(service.request_cancel(session, tenant.id, job_id))


def _artifact_response(
    session: SessionDep, tenant_id: str, job_id: str, kind: str, media: str, store: StoreDep
) -> Response:
    job = service.get_job(session, tenant_id, job_id)
    if job.status != "succeeded":
        raise Conflict(f"job {job_id} is {job.status}; results exist once it has succeeded", code="job_not_finished")
    artifact = repository.artifact(session, job_id, kind)
    if artifact is None or not store.exists(artifact.storage_key):
        raise NotFound(f"job {job_id} has no {kind}")
    with store.local_copy(artifact.storage_key) as path:
        return FileResponse(path, media_type=media, filename=kind, headers={"X-Content-SHA256": artifact.sha256})


@router.get(
    "/{job_id}/model.tflite",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the compressed model"}},
    response_class=Response,
)
def download_model(job_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    return _artifact_response(session, tenant.id, job_id, "model.tflite", "application/octet-stream", store)


@router.get(
    "/{job_id}/report",
    responses={**ERRORS, 200: {"content": {"application/json": {}}, "description": "the report"}},
    response_class=Response,
)
def download_report(job_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    return _artifact_response(session, tenant.id, job_id, "report.json", "application/json", store)


@router.get(
    "/{job_id}/model.keras",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the pruned Keras model"}},
    response_class=Response,
)
def download_keras(job_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    return _artifact_response(session, tenant.id, job_id, "model.keras", "application/octet-stream", store)
