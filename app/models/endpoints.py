from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from app import pagination
from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS, multipart_file
from app.housekeeping import service as housekeeping
from app.housekeeping.service import EXPIRES_HELP
from app.housekeeping.service import MAX_EXPIRES_IN_S as EXPIRES_MAX
from app.models import repository, service
from app.models.schemas import ModelList, ModelOut
from app.tables import Model

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post(
    "",
    status_code=201,
    response_model=ModelOut,
    responses={**ERRORS, 200: {"model": ModelOut, "description": "the same bytes were uploaded before"}},
    openapi_extra=multipart_file("A Keras 3 `.keras`, legacy `.h5` or `.tflite` model"),
)
async def upload_model(
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    store: StoreDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    expires_in: Annotated[int | None, Query(ge=1, le=EXPIRES_MAX, description=EXPIRES_HELP)] = None,
) -> Any:
    """Upload a model; its format is read from its content and its shape and size from loading it."""
    status, body = await service.upload_model(request, session, tenant.id, settings, store, idempotency_key)
    if expires_in is not None:
        body["expires_at"] = housekeeping.set_expiry(session, Model, body["id"], expires_in).isoformat()
    return JSONResponse(body, status_code=status)


@router.get("", response_model=ModelList, responses=ERRORS)
def list_models(
    session: SessionDep, tenant: CurrentTenant, cursor: str | None = None, limit: int = Query(50, ge=1, le=500)
) -> Any:
    items, next_cursor = pagination.split(repository.list_for(session, tenant.id, cursor, limit), limit)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{model_id}", response_model=ModelOut, responses=ERRORS)
def get_model(model_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return service.get_model(session, tenant.id, model_id)
