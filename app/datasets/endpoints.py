from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse

from app import pagination
from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS, multipart_file
from app.datasets import imported, repository, service
from app.datasets.schemas import DatasetImport, DatasetList, DatasetOut
from app.errors import InvalidInput
from app.housekeeping import service as housekeeping
from app.housekeeping.service import EXPIRES_HELP
from app.housekeeping.service import MAX_EXPIRES_IN_S as EXPIRES_MAX
from app.tables import Dataset

OPTIONS_DOC = (
    "JSON object. All formats: format (npz|images|audio|csv|parquet|tfrecord, else detected), seed, "
    "val_fraction, test_fraction, max_bad_fraction (default 0.05), scale, offset. images: image_size [h, w], "
    "channels (1|3). audio: frontend {type: mfcc|log_mel, sample_rate, clip_ms, frame_ms, stride_ms, mel_bins, "
    "bins, lower_hz, upper_hz}. csv, parquet: label, channels [columns], window, stride, split_column, group. "
    "tfrecord: features {name: {dtype: float32|int64|string, shape: [...], decode: image|raw_uint8|raw_int16|"
    "raw_float32}} (the label and one input), label."
)

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    responses={**ERRORS, 200: {"model": DatasetOut, "description": "the same bytes were uploaded before"}},
    openapi_extra=multipart_file(
        "An .npz with x_train, y_train, x_val, y_val (optional x_test, y_test); a .zip/.tar of class folders of "
        "JPEG/PNG images or WAV clips (optional train/ val/ test/ at the top); a .csv or .parquet with a label "
        "column; or TFRecord shards of tf.train.Example (one file, or a .zip/.tar of shards) with options.features"
    ),
)
async def upload_dataset(
    request: Request,
    session: SessionDep,
    tenant: CurrentTenant,
    settings: SettingsDep,
    store: StoreDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    options: Annotated[str | None, Query(max_length=4000, description=OPTIONS_DOC)] = None,
    expires_in: Annotated[int | None, Query(ge=1, le=EXPIRES_MAX, description=EXPIRES_HELP)] = None,
) -> Any:
    """Upload a dataset; it is checked and converted in a confined process, and never unpickled."""
    opts = service.parse_options(options)
    status, body = await service.upload_dataset(request, session, tenant.id, settings, store, idempotency_key, opts)
    if expires_in is not None:
        body["expires_at"] = housekeeping.set_expiry(session, Dataset, body["id"], expires_in).isoformat()
    return JSONResponse(body, status_code=status)


@router.post(
    "/import",
    status_code=201,
    response_model=DatasetOut,
    responses={**ERRORS, 200: {"model": DatasetOut, "description": "a dataset with the same bytes exists"}},
)
async def import_dataset(
    body: DatasetImport, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep, store: StoreDep
) -> Any:
    """A dataset named by an `s3://` URL the server's credentials can read (under an allowed prefix),
    fetched and checked like an upload; 403 outside the allowed prefixes."""
    if body.expires_in is not None and body.expires_in > EXPIRES_MAX:
        raise InvalidInput(f"expires_in is at most {EXPIRES_MAX} seconds", code="invalid_input")
    status, dataset = await imported.import_dataset(
        session, tenant.id, tenant.name, settings, store, body.url, body.options
    )
    out = DatasetOut.model_validate(dataset).model_dump(mode="json")
    if body.expires_in is not None:
        out["expires_at"] = housekeeping.set_expiry(session, Dataset, out["id"], body.expires_in).isoformat()
    return JSONResponse(out, status_code=status)


@router.get("", response_model=DatasetList, responses=ERRORS)
def list_datasets(
    session: SessionDep, tenant: CurrentTenant, cursor: str | None = None, limit: int = Query(50, ge=1, le=500)
) -> Any:
    items, next_cursor = pagination.split(repository.list_for(session, tenant.id, cursor, limit), limit)
    return {"items": items, "next_cursor": next_cursor, "builtin": service.builtin()}


@router.get("/{dataset_id}", response_model=DatasetOut, responses=ERRORS)
def get_dataset(dataset_id: str, session: SessionDep, tenant: CurrentTenant) -> Any:
    return service.get_dataset(session, tenant.id, dataset_id)
