from typing import Any

from fastapi import APIRouter, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS, ErrorResponse
from app.housekeeping import service
from app.housekeeping.schemas import Usage
from app.jobs.schemas import JobOut

router = APIRouter(tags=["housekeeping"])

IN_USE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "still used by a queued or running job"}
}


@router.delete("/v1/models/{model_id}", status_code=204, response_class=Response, responses={**ERRORS, **IN_USE})
def delete_model(model_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    """Delete the model and its file; jobs made from it keep their results. 409 `model_in_use` while a
    queued or running job uses it."""
    service.delete_model(session, tenant.id, model_id, store)
    return Response(status_code=204)


@router.delete("/v1/datasets/{dataset_id}", status_code=204, response_class=Response, responses={**ERRORS, **IN_USE})
def delete_dataset(dataset_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Response:
    """Delete the dataset and its file. 409 `dataset_in_use` while a queued or running job uses it."""
    service.delete_dataset(session, tenant.id, dataset_id, store)
    return Response(status_code=204)


@router.delete(
    "/v1/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    response_model=None,
    responses={
        **ERRORS,
        202: {"model": JobOut, "description": "it was running: cancelled now, deleted once it has stopped"},
        409: {"model": ErrorResponse, "description": "a point of a sweep (delete the sweep)"},
    },
)
def delete_job(job_id: str, session: SessionDep, tenant: CurrentTenant, store: StoreDep) -> Any:
    """Delete the job with its events and every file it produced; a queued job is cancelled first,
    a running one is cancelled and deleted once it stops (202)."""
    job = service.delete_job(session, tenant.id, job_id, store)
    if job is None:
        return Response(status_code=204)
    return JSONResponse(jsonable_encoder(JobOut.from_row(job)), status_code=202)


@router.get("/v1/usage", response_model=Usage, responses=ERRORS)
def usage(session: SessionDep, tenant: CurrentTenant, settings: SettingsDep) -> Any:
    """What the tenant stores and runs, against its limits."""
    return service.usage(session, tenant.id, settings)
