import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app import idempotency, pagination
from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS, ErrorResponse
from app.db import session_scope
from app.errors import Conflict, NotFound
from app.jobs import events, lifecycle, repository, service
from app.jobs.schemas import ArtifactList, ArtifactUrl, DeliveryList, JobList, JobOut
from app.storage import CHUNK, ArtifactStore
from app.tables import TERMINAL, Artifact, JobStatus, StatusName
from contract.report import AnyReport
from contract.spec import JobSpec

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

ROUTE_SUBMIT = "POST /v1/jobs"
EVENT_POLL_S = 0.5

Status = StatusName


@router.post(
    "",
    status_code=202,
    response_model=JobOut,
    responses={**ERRORS, 429: {"model": ErrorResponse, "description": "over the tenant's queue quota"}},
)
def submit_job(
    spec: JobSpec,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Any:
    """Queue a job; follow it with `GET /v1/jobs/{id}` or `GET /v1/jobs/{id}/events`.

    With an `Idempotency-Key`, a retry with the same body returns the first response.
    """
    key = idempotency.check_key(idempotency_key)
    digest = idempotency.request_hash(spec.model_dump(mode="json"))
    replayed = idempotency.replay(session, tenant.id, ROUTE_SUBMIT, key, digest)
    if replayed is not None:
        return JSONResponse(replayed.response, status_code=replayed.status_code)
    body = jsonable_encoder(JobOut.from_row(service.create_job(session, tenant.id, spec, settings)))
    idempotency.remember(session, tenant.id, ROUTE_SUBMIT, key, digest, 202, body)
    return JSONResponse(body, status_code=202)


@router.get("", response_model=JobList, responses=ERRORS)
def list_jobs(
    session: SessionDep,
    tenant: CurrentTenant,
    status: Status | None = None,
    parent_id: Annotated[str | None, Query(max_length=64, description="only the points of this sweep")] = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=1, le=500),
) -> Any:
    """The tenant's jobs, newest first; pass `next_cursor` back as `cursor` for the next page."""
    found = repository.list_for(session, tenant.id, status, cursor, limit, parent_id=parent_id)
    jobs, next_cursor = pagination.split(found, limit)
    return {"items": [JobOut.from_row(j) for j in jobs], "next_cursor": next_cursor}


@router.get("/{job_id}", response_model=JobOut, responses=ERRORS)
def get_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return JobOut.from_row(service.get_job(session, tenant.id, job_id))


@router.get(
    "/{job_id}/events",
    responses={**ERRORS, 200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
    response_class=StreamingResponse,
)
async def job_events(
    job_id: str,
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """Stage changes, progress, log lines and the final state as Server-Sent Events.

    The history is stored with the job: a late client sees all of it; `Last-Event-ID` resumes.
    The stream ends after the terminal event.
    """
    await run_in_threadpool(service.get_job, session, tenant.id, job_id)
    return StreamingResponse(
        _event_stream(request, job_id, last_event_id or 0),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _events_after(job_id: str, last: int) -> list[tuple[int, str, bool]]:
    with session_scope() as session:
        return [
            (e.id, events.sse(e), e.type == "status" and e.data.get("status") in TERMINAL)
            for e in events.after(session, job_id, last)
        ]


async def _event_stream(request: Request, job_id: str, last: int) -> AsyncIterator[str]:
    idle = 0.0
    while True:
        rows = await run_in_threadpool(_events_after, job_id, last)
        for event_id, text, terminal in rows:
            last = event_id
            yield text
            if terminal:
                return
        if await request.is_disconnected():
            return
        idle = 0.0 if rows else idle + EVENT_POLL_S
        if idle >= 15:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(EVENT_POLL_S)


@router.get("/{job_id}/deliveries", response_model=DeliveryList, responses=ERRORS)
def job_deliveries(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    """Every attempt to deliver the job's webhook, with its outcome."""
    service.get_job(session, tenant.id, job_id)
    return {"items": repository.deliveries(session, job_id)}


@router.post("/{job_id}/cancel", response_model=JobOut, responses=ERRORS)
def cancel_job(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return JobOut.from_row(lifecycle.cancel(session, tenant.id, job_id))


def _finished_job(session: SessionDep, tenant_id: str, job_id: str) -> None:
    job = service.get_job(session, tenant_id, job_id)
    if job.status != JobStatus.SUCCEEDED:
        raise Conflict(f"job {job_id} is {job.status}; results exist once it has succeeded", code="job_not_finished")


def _finished_artifact(session: SessionDep, tenant_id: str, job_id: str, kind: str, store: ArtifactStore) -> Artifact:
    _finished_job(session, tenant_id, job_id)
    artifact = repository.artifact(session, job_id, kind)
    if artifact is None or not store.exists(artifact.storage_key):
        raise NotFound(f"job {job_id} has no {kind}")
    return artifact


def _chunks(store: ArtifactStore, key: str) -> Iterator[bytes]:
    with store.open(key) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _artifact_response(
    session: SessionDep, tenant_id: str, job_id: str, kind: str, media: str, store: StoreDep
) -> Response:
    """The file streamed from the store in chunks, whichever store it is: never whole in memory."""
    artifact = _finished_artifact(session, tenant_id, job_id, kind, store)
    headers = {
        "Content-Length": str(artifact.bytes),
        "Content-Disposition": f'attachment; filename="{kind}"',
        "X-Content-SHA256": artifact.sha256,
    }
    return StreamingResponse(_chunks(store, artifact.storage_key), media_type=media, headers=headers)


@router.get("/{job_id}/artifacts/{name}/url", response_model=ArtifactUrl, responses=ERRORS)
def artifact_url(
    job_id: str, name: str, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep, store: StoreDep
) -> Any:
    """A presigned URL to download the job's file `name` straight from the object store, without an API key.

    409 `not_supported` when the server keeps artifacts in a local folder (download through the API then).
    """
    artifact = _finished_artifact(session, tenant.id, job_id, name, store)
    expires = settings.download_url_expires_s
    url = store.presigned_url(artifact.storage_key, name, expires)
    if url is None:
        raise Conflict(
            "this server keeps artifacts in a local folder, which has no presigned URLs; "
            f"download through GET /v1/jobs/{job_id}/artifacts/{name} instead",
            code="not_supported",
        )
    return {"url": url, "expires_in": expires}


@router.get(
    "/{job_id}/model.tflite",
    responses={**ERRORS, 200: {"content": {"application/octet-stream": {}}, "description": "the compressed model"}},
    response_class=Response,
)
def download_model(job_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    return _artifact_response(session, tenant.id, job_id, "model.tflite", "application/octet-stream", store)


@router.get(
    "/{job_id}/report",
    responses={
        **ERRORS,
        200: {
            "model": AnyReport,
            "description": "the job's report.json: a prune or profile job's `Report`, or a sweep's `SweepReport` "
            "(`kind: sweep`: its points, the dense baseline and the Pareto set per device)",
        },
    },
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


# Media types of the files a job produces, by the end of their name.
MEDIA_TYPES = {".png": "image/png", ".tar.gz": "application/gzip", ".json": "application/json"}
ARTIFACT_MEDIA = sorted({*MEDIA_TYPES.values(), "application/octet-stream"})


def media_type(name: str) -> str:
    return next((media for end, media in MEDIA_TYPES.items() if name.endswith(end)), "application/octet-stream")


@router.get("/{job_id}/artifacts", response_model=ArtifactList, responses=ERRORS)
def list_artifacts(job_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    """Every file the job produced (models, report, plots, TensorBoard logs), with size and SHA-256."""
    _finished_job(session, tenant.id, job_id)
    return {
        "items": [
            {"name": a.kind, "bytes": a.bytes, "sha256": a.sha256, "media_type": media_type(a.kind)}
            for a in repository.artifacts(session, job_id)
        ]
    }


@router.get(
    "/{job_id}/artifacts/{name}",
    responses={
        **ERRORS,
        200: {"content": {media: {} for media in ARTIFACT_MEDIA}, "description": "the file, typed by its name"},
    },
    response_class=Response,
)
def download_artifact(job_id: str, name: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    """One file of the job by its name in `GET /v1/jobs/{job_id}/artifacts` (e.g. `layers.png`)."""
    return _artifact_response(session, tenant.id, job_id, name, media_type(name), store)
