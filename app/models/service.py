"""Model uploads: stream, check the format by content and the file for safety, read its shape and size.

The file is checked and described in a subprocess without credentials (Keras files from their
config and weights, without building them); a model that passes these checks but does not load
fails its job with a reason.
"""

import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.errors import NotFound, UnsupportedMediaType
from app.models import repository
from app.models.inspection import inspect_model
from app.models.schemas import ModelOut
from app.settings import Settings
from app.storage import ArtifactStore
from app.tables import Model, new_id
from app.uploads import Upload, store_upload

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def sniff_model_format(head: bytes) -> str | None:
    """`keras`, `h5` or `tflite` from the first bytes of the file, whatever its name says."""
    if head[4:8] == b"TFL3":
        return "tflite"
    if head.startswith(HDF5_SIGNATURE) or head[512:520] == HDF5_SIGNATURE:
        return "h5"
    if head.startswith(b"PK\x03\x04"):
        return "keras"
    return None


async def _create(upload: Upload, session: Session, tenant_id: str, settings: Settings) -> Model:
    fmt = sniff_model_format(upload.writer.head)
    if fmt is None:
        raise UnsupportedMediaType("not a Keras (.keras, .h5) or TensorFlow Lite (.tflite) model file")
    # The archive's checks (members, sizes, CRCs: a full decompression) run in the confined checker
    # with the rest (`contract.safety.check_model_file`), never in this process nor on its event loop.
    # The spooled bytes are read before they are stored, under the name whose suffix tells the
    # inspector the format: a rejected file never reaches the store, and S3 is not read back.
    with tempfile.TemporaryDirectory(prefix="shears-inspect-") as folder:
        named = Path(folder) / f"model.{fmt}"
        named.symlink_to(upload.path)
        info = await inspect_model(named, settings.inspect_timeout_s)
    model_id = new_id("mdl")
    artifact = await upload.store(tenant_id, "model", f"{tenant_id}/models/{model_id}/model.{fmt}")
    model = Model(
        id=model_id,
        tenant_id=tenant_id,
        filename=upload.filename,
        format=fmt,
        sha256=artifact.sha256,
        bytes=artifact.bytes,
        params=info.get("params"),
        input_shape=info.get("input_shape"),
        output_shape=info.get("output_shape"),
        layers=info.get("layers"),
    )
    return await run_in_threadpool(repository.add, session, model, artifact)


async def upload_model(
    request: Request,
    session: Session,
    tenant_id: str,
    settings: Settings,
    store: ArtifactStore,
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """201 with the new model; 200 with the existing one when the same bytes were uploaded before."""

    async def create(upload: Upload) -> Model:
        return await _create(upload, session, tenant_id, settings)

    return await store_upload(
        request,
        session,
        tenant_id,
        settings,
        store,
        route="POST /v1/models",
        idempotency_key=idempotency_key,
        find_existing=repository.by_sha256,
        create=create,
        serialize=lambda m: ModelOut.model_validate(m).model_dump(mode="json"),
    )


def get_model(session: Session, tenant_id: str, model_id: str) -> Model:
    model = repository.get(session, tenant_id, model_id)
    if model is None:
        raise NotFound(f"no model {model_id!r}")
    return model
