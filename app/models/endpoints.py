from typing import Any

from fastapi import APIRouter, Query, Request

from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS, multipart_file
from app.models import repository, service
from app.models.schemas import ModelList, ModelOut

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.post(
    "",
    status_code=201,
    response_model=ModelOut,
    responses=ERRORS,
    openapi_extra=multipart_file("A Keras 3 `.keras`, legacy `.h5` or `.tflite` model"),
)
async def upload_model(
    request: Request, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep, store: StoreDep
) -> Any:
    """Upload a model; its format is read from its content and its shape and size from loading it."""
    return await service.upload_model(request, session, tenant.id, settings, store)


@router.get("", response_model=ModelList, responses=ERRORS)
def list_models(session: SessionDep, tenant: CurrentTenant, limit: int = Query(50, ge=1, le=500)) -> Any:
    return {"items": repository.list_for(session, tenant.id, limit)}


@router.get("/{model_id}", response_model=ModelOut, responses=ERRORS)
def get_model(model_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return service.get_model(session, tenant.id, model_id)
