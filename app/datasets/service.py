"""Dataset uploads: `.npz` archives checked from their array headers; nothing is unpickled."""

from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.datasets import repository
from app.datasets.schemas import DatasetOut
from app.errors import InvalidInput, NotFound, UnsupportedMediaType, rejected
from app.settings import Settings
from app.storage import ArtifactStore
from app.tables import Dataset, new_id
from app.uploads import Upload, store_upload
from pruning.datasets import BUILTIN, describe_npz, infer_task
from pruning.errors import PruningError
from pruning.safety import check_archive


def _describe(path: Path, max_total: int) -> tuple[dict[str, Any], str]:
    try:
        with check_archive(path, max_total=max_total):
            pass
        arrays = describe_npz(path)
        with np.load(path, allow_pickle=False) as npz:
            task = infer_task(npz["y_train"])
    except PruningError as exc:
        raise rejected(exc) from exc
    except ValueError as exc:
        raise InvalidInput(f"could not read the arrays: {exc}", code="invalid_dataset") from exc
    return arrays, task


async def _create(upload: Upload, session: Session, tenant_id: str, settings: Settings) -> Dataset:
    if not upload.writer.head.startswith(b"PK\x03\x04"):
        raise UnsupportedMediaType("a dataset must be an .npz file (numpy.savez) with x_train, y_train, x_val, y_val")
    arrays, task = await run_in_threadpool(_describe, upload.path, 4 * settings.max_upload_bytes)
    dataset_id = new_id("ds")
    artifact = await upload.store(tenant_id, "dataset", f"{tenant_id}/datasets/{dataset_id}/data.npz")
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        filename=upload.filename,
        sha256=artifact.sha256,
        bytes=artifact.bytes,
        arrays=arrays,
        task=task,
    )
    return await run_in_threadpool(repository.add, session, dataset, artifact)


async def upload_dataset(
    request: Request,
    session: Session,
    tenant_id: str,
    settings: Settings,
    store: ArtifactStore,
    idempotency_key: str | None,
) -> tuple[int, dict[str, Any]]:
    """201 with the new dataset; 200 with the existing one when the same bytes were uploaded before."""

    async def create(upload: Upload) -> Dataset:
        return await _create(upload, session, tenant_id, settings)

    return await store_upload(
        request,
        session,
        tenant_id,
        settings,
        store,
        route="POST /v1/datasets",
        idempotency_key=idempotency_key,
        find_existing=repository.by_sha256,
        create=create,
        serialize=lambda d: DatasetOut.model_validate(d).model_dump(mode="json"),
    )


def get_dataset(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    dataset = repository.get(session, tenant_id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return dataset


def builtin() -> list[dict[str, str]]:
    return [{"id": name, "description": text} for name, text in BUILTIN.items()]
