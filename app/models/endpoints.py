from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from app import pagination
from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS, multipart_file
from app.models import repository, service
from app.models.schemas import ModelList, ModelOut

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
) -> Any:
    """Upload a model; its format is read from its content and its shape and size from loading it."""
    status, body = await service.upload_model(request, session, tenant.id, settings, store, idempotency_key)
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
