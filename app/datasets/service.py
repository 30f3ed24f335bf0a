"""Dataset uploads: `.npz`, image or audio folders, sensor CSV; checked and converted in a confined
subprocess (`pruning.check_dataset`) into an uncompressed `.npz` the engine memory-maps."""

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app.datasets import repository
from app.datasets.schemas import DatasetOut
from app.errors import InvalidInput, NotFound, UnsupportedMediaType
from app.models.inspection import OUTPUT, run_checker
from app.settings import Settings
from app.storage import ArtifactStore
from app.tables import Artifact, Dataset, new_id
from app.uploads import Upload, store_upload
from contract.datasets import BUILTIN
from contract.formats import looks_like_tfrecord

TAR_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


def sniff(head: bytes, filename: str, options: dict[str, Any]) -> None:
    """Refuse (415) what is none of the formats before starting the checker."""
    is_tar = len(head) > 262 and head[257:262] == b"ustar" or head.startswith(TAR_MAGIC)
    is_csv = filename.lower().endswith(".csv") or options.get("format") == "csv"
    is_columns = head.startswith(b"PAR1") or looks_like_tfrecord(head[:12]) or options.get("format") == "tfrecord"
    if not (head.startswith(b"PK\x03\x04") or is_tar or is_csv or is_columns):
        raise UnsupportedMediaType(
            "a dataset must be an .npz (numpy.savez with x_train, y_train, x_val, y_val), a .zip or .tar of "
            "class folders (images or WAV clips), a .csv or .parquet with a label column, or TFRecord shards"
        )


def parse_options(raw: str | None) -> dict[str, Any]:
    try:
        options = json.loads(raw) if raw else {}
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"options is not JSON: {exc}", code="invalid_options") from exc
    if not isinstance(options, dict):
        raise InvalidInput("options must be a JSON object", code="invalid_options")
    return options


async def check(path: Path, options: dict[str, Any], settings: Settings) -> tuple[dict[str, Any], Path | None]:
    """The confined checker's summary, and the converted `.npz` it wrote (None: store `path` as it is)."""
    out = path.with_name(path.name + ".converted.npz")
    args = [str(path), OUTPUT, json.dumps(options), str(4 * settings.max_dataset_bytes)]
    limit = 4 * settings.max_dataset_bytes
    timeout = settings.dataset_check_timeout_s
    try:
        summary = await run_checker("pruning.check_dataset", args, timeout, "dataset", limit, [path], output=out)
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return summary, (out if summary.get("converted") else None)


async def create_dataset(
    session: Session,
    tenant_id: str,
    settings: Settings,
    *,
    path: Path,
    filename: str,
    head: bytes,
    digest: str,
    publish: Callable[[str, Path | None], Awaitable[Artifact]],
    options: dict[str, Any],
) -> Dataset:
    """Check and convert the received file at `path`, store it (`publish(key, converted or None)`), add the row."""
    sniff(head, filename, options)
    summary, converted = await check(path, options, settings)
    dataset_id = new_id("ds")
    try:
        artifact = await publish(f"{tenant_id}/datasets/{dataset_id}/data.npz", converted)
    finally:
        if converted is not None:
            converted.unlink(missing_ok=True)
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        filename=filename,
        sha256=digest,  # of the bytes uploaded: the same upload again finds this row
        bytes=artifact.bytes,
        arrays=summary.pop("arrays"),
        task=summary.pop("task"),
        format=summary["format"],
        summary=summary,
    )
    return await run_in_threadpool(repository.add, session, dataset, artifact)


async def put(store: ArtifactStore, tenant_id: str, key: str, path: Path) -> Artifact:
    stored = await run_in_threadpool(store.put_file, key, path)
    return Artifact(
        tenant_id=tenant_id, kind="dataset", storage_key=stored.key, bytes=stored.bytes, sha256=stored.sha256
    )


async def upload_dataset(
    request: Request,
    session: Session,
    tenant_id: str,
    settings: Settings,
    store: ArtifactStore,
    idempotency_key: str | None,
    options: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """201 with the new dataset; 200 with the existing one when the same bytes were uploaded before."""

    async def create(upload: Upload) -> Dataset:
        async def publish(key: str, converted: Path | None) -> Artifact:
            if converted is None:
                return await upload.store(tenant_id, "dataset", key)
            return await put(store, tenant_id, key, converted)

        return await create_dataset(
            session,
            tenant_id,
            settings,
            path=upload.path,
            filename=upload.filename,
            head=upload.writer.head,
            digest=upload.writer.sha256,
            publish=publish,
            options=options or {},
        )

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
