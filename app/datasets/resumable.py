"""Resumable dataset uploads, tus 1.0.0 (core + creation): big datasets go up in PATCHes that a
dropped connection does not waste; `HEAD` says how much arrived, the client sends the rest.

`POST /v1/uploads` (Upload-Length up to SHEARS_MAX_DATASET_BYTES, Upload-Metadata `filename` and
`options`) -> 201 with Location; `PATCH` appends at `Upload-Offset`; `HEAD` gives the offset; once
complete, `POST /v1/uploads/{id}/dataset` checks and converts it into a dataset, as a multipart
upload is. Parts live under `<data_dir>/uploads` (one API node, or a shared folder).
"""

import base64
import hashlib
import json
import re
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from app import quotas
from app.api.deps import CurrentTenant, SessionDep, SettingsDep, StoreDep
from app.api.docs import ERRORS
from app.datasets import repository, service
from app.datasets.schemas import DatasetOut
from app.errors import InvalidInput, NotFound, PayloadTooLarge, ShearsError, UnsupportedMediaType
from app.settings import Settings
from app.tables import Artifact, new_id

TUS = {"Tus-Resumable": "1.0.0"}
ID = re.compile(r"^up_[A-Za-z0-9]{1,40}$")

router = APIRouter(prefix="/v1/uploads", tags=["datasets"])


class OffsetConflict(ShearsError):
    status_code = 409
    code = "offset_mismatch"


def _folder(settings: Settings) -> Path:
    folder = (settings.data_dir / "uploads").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state(settings: Settings, tenant_id: str, upload_id: str) -> tuple[dict[str, Any], Path]:
    folder = _folder(settings)
    meta_path = folder / f"{upload_id}.json"
    if not ID.match(upload_id) or not meta_path.exists():
        raise NotFound(f"no upload {upload_id!r}")
    meta = json.loads(meta_path.read_text())
    if meta["tenant_id"] != tenant_id:
        raise NotFound(f"no upload {upload_id!r}")
    return meta, folder / f"{upload_id}.part"


def _int_header(request: Request, name: str, minimum: int) -> int:
    value = request.headers.get(name, "")
    if not value.isdigit() or int(value) < minimum:
        raise InvalidInput(f"send the {name} header as an integer >= {minimum}", code="invalid_header")
    return int(value)


def _metadata(header: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in (header or "").split(","):
        key, _, value = pair.strip().partition(" ")
        if key:
            try:
                out[key] = base64.b64decode(value, validate=True).decode() if value else ""
            except ValueError as exc:
                raise InvalidInput(f"Upload-Metadata {key}: not base64 ({exc})", code="invalid_metadata") from exc
    return out


@router.options("", include_in_schema=False)
def capabilities(settings: SettingsDep) -> Response:
    headers = {
        **TUS,
        "Tus-Version": "1.0.0",
        "Tus-Extension": "creation",
        "Tus-Max-Size": str(settings.max_dataset_bytes),
    }
    return Response(status_code=204, headers=headers)


@router.post("", status_code=201, response_class=Response, responses=ERRORS)
def create_upload(request: Request, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep) -> Response:
    """Start a resumable upload of `Upload-Length` bytes (tus creation; headers `Tus-Resumable: 1.0.0`,
    `Upload-Length`, optional `Upload-Metadata` with base64 `filename` and `options`); the answer's
    Location is where to PATCH."""
    upload_length = _int_header(request, "upload-length", minimum=1)
    upload_metadata = request.headers.get("upload-metadata")
    if upload_metadata and len(upload_metadata) > 8000:
        raise InvalidInput("Upload-Metadata is over 8000 characters", code="invalid_metadata")
    if upload_length > settings.max_dataset_bytes:
        raise PayloadTooLarge(f"upload of {upload_length} bytes is over the {settings.max_dataset_bytes}-byte limit")
    meta = _metadata(upload_metadata)
    options = service.parse_options(meta.get("options"))
    quotas.check_upload(session, tenant.id, upload_length, settings)
    upload_id = new_id("up")
    folder = _folder(settings)
    (folder / f"{upload_id}.part").touch()
    state = {
        "tenant_id": tenant.id,
        "length": upload_length,
        "filename": meta.get("filename", "upload")[:255],
        "options": options,
        "created": time.time(),
    }
    (folder / f"{upload_id}.json").write_text(json.dumps(state))
    return Response(status_code=201, headers={**TUS, "Location": f"/v1/uploads/{upload_id}", "Upload-Offset": "0"})


@router.head("/{upload_id}", response_class=Response, responses=ERRORS)
def upload_offset(upload_id: str, tenant: CurrentTenant, settings: SettingsDep) -> Response:
    """How many bytes of the upload arrived: resume the PATCHes from there."""
    meta, part = _state(settings, tenant.id, upload_id)
    headers = {**TUS, "Upload-Offset": str(part.stat().st_size), "Upload-Length": str(meta["length"])}
    return Response(status_code=200, headers={**headers, "Cache-Control": "no-store"})


@router.patch("/{upload_id}", status_code=204, response_class=Response, responses=ERRORS)
async def append(upload_id: str, request: Request, tenant: CurrentTenant, settings: SettingsDep) -> Response:
    """Append the body at `Upload-Offset` (header; body as application/offset+octet-stream); what arrives
    before a cut is kept."""
    upload_offset = _int_header(request, "upload-offset", minimum=0)
    if request.headers.get("content-type", "") != "application/offset+octet-stream":
        raise UnsupportedMediaType("send the bytes as application/offset+octet-stream", code="expected_octet_stream")
    meta, part = _state(settings, tenant.id, upload_id)
    offset = part.stat().st_size
    if upload_offset != offset:
        raise OffsetConflict(f"Upload-Offset is {upload_offset} but {offset} bytes have arrived (HEAD to resume)")
    with part.open("ab") as f:
        try:
            async for chunk in request.stream():
                if offset + len(chunk) > meta["length"]:
                    raise InvalidInput("more bytes than Upload-Length", code="upload_too_long")
                f.write(chunk)
                offset += len(chunk)
        except ClientDisconnect:
            pass  # the bytes that arrived stay; the client resumes from HEAD's offset
    return Response(status_code=204, headers={**TUS, "Upload-Offset": str(offset)})


@router.post(
    "/{upload_id}/dataset",
    status_code=201,
    response_model=DatasetOut,
    responses={**ERRORS, 200: {"model": DatasetOut, "description": "the same bytes were uploaded before"}},
)
async def finish_dataset(
    upload_id: str, session: SessionDep, tenant: CurrentTenant, settings: SettingsDep, store: StoreDep
) -> Any:
    """Turn a complete upload into a dataset (checked and converted as a multipart upload is)."""
    meta, part = _state(settings, tenant.id, upload_id)
    if part.stat().st_size != meta["length"]:
        raise OffsetConflict(f"the upload is incomplete: {part.stat().st_size} of {meta['length']} bytes")
    digest = await run_in_threadpool(_sha256, part)
    existing = await run_in_threadpool(repository.by_sha256, session, tenant.id, digest)
    if existing is not None:
        status, dataset = 200, existing
    else:
        await run_in_threadpool(quotas.check_upload, session, tenant.id, meta["length"], settings)

        async def publish(key: str, converted: Path | None) -> Artifact:
            return await service.put(store, tenant.id, key, converted or part)

        with part.open("rb") as f:
            head = f.read(4096)
        dataset = await service.create_dataset(
            session,
            tenant.id,
            settings,
            path=part,
            filename=meta["filename"],
            head=head,
            digest=digest,
            publish=publish,
            options=meta["options"],
        )
        status = 201
    body = DatasetOut.model_validate(dataset).model_dump(mode="json")
    part.unlink(missing_ok=True)
    part.with_suffix(".json").unlink(missing_ok=True)
    return JSONResponse(body, status_code=status)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()
