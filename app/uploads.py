"""Streaming multipart uploads: the body goes to the artifact store in chunks, hashed and capped.

Starlette's own form parser would spool the whole file before the endpoint runs; this one
stops reading as soon as the cap is passed.
"""

import errno
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from app import idempotency, quotas
from app.errors import InsufficientStorage, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from app.settings import Settings
from app.storage import ArtifactStore, ArtifactWriter
from app.tables import Artifact

# Headroom for the multipart framing around the file itself.
FRAMING_BYTES = 64 * 1024


@dataclass
class Upload:
    writer: ArtifactWriter
    filename: str

    @property
    def path(self) -> Path:
        return self.writer.tmp

    async def store(self, tenant_id: str, kind: str, key: str) -> Artifact:
        """Publish the checked bytes under `key` (off the event loop: on S3 a network upload)."""
        stored = await run_in_threadpool(self.writer.commit, key)
        return Artifact(
            tenant_id=tenant_id, kind=kind, storage_key=stored.key, bytes=stored.bytes, sha256=stored.sha256
        )


@dataclass
class _PartState:
    """Where the parser is: the headers of the current part, and whether it is the file."""

    header: bytes = b""
    headers: dict[bytes, bytes] = field(default_factory=dict)
    mine: bool = False
    found: bool = False
    filename: str = ""


async def receive_file(request: Request, store: ArtifactStore, max_bytes: int, field: str = "file") -> Upload:
    """Stream the multipart part named `field` into a store writer; the caller commits or aborts it."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UnsupportedMediaType(
            f"send the file as multipart/form-data with a `{field}` field (curl -F {field}=@FILE)",
            code="expected_multipart",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes + FRAMING_BYTES:
        raise PayloadTooLarge(f"upload of {int(declared)} bytes is over the {max_bytes}-byte limit")

    writer = store.writer()
    part = _PartState()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        part.header += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        name = part.header.lower()
        part.headers[name] = part.headers.get(name, b"") + data[start:end]

    def on_header_end() -> None:
        part.header = b""

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.mine = disposition.get(b"name") == field.encode() and not part.found
        if part.mine:
            part.found = True
            part.filename = disposition.get(b"filename", b"").decode("utf-8", "replace")[:255]

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.mine:
            writer.write(data[start:end])
            if writer.bytes > max_bytes:
                raise PayloadTooLarge(f"upload is over the {max_bytes}-byte limit")

    def on_part_end() -> None:
        part.mine = False
        part.headers = {}

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except PayloadTooLarge:
        writer.abort()
        raise
    except OSError as exc:
        writer.abort()
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("the server's disk is full; try again later") from exc
        raise
    except Exception as exc:  # the multipart parser raises on malformed framing
        writer.abort()
        raise InvalidInput(f"malformed multipart body: {exc}", code="malformed_upload") from exc
    if not part.found:
        writer.abort()
        raise InvalidInput(f"no `{field}` field in the upload (curl -F {field}=@FILE)", code="missing_file")
    if writer.bytes == 0:
        writer.abort()
        raise InvalidInput("the uploaded file is empty", code="empty_file")
    writer.close()
    return Upload(writer=writer, filename=part.filename or "upload")


async def store_upload(
    request: Request,
    session: Session,
    tenant_id: str,
    settings: Settings,
    store: ArtifactStore,
    *,
    route: str,
    idempotency_key: str | None,
    find_existing: Callable[[Session, str, str], Any],
    create: Callable[[Upload], Awaitable[Any]],
    serialize: Callable[[Any], dict[str, Any]],
) -> tuple[int, dict[str, Any]]:
    """Receive an upload and turn it into a row exactly once.

    A retry with the same `Idempotency-Key` and bytes replays the first response; the same bytes
    uploaded again return the existing row (200) instead of a copy; past the tenant's upload
    quota the answer is 429. Returns (status, body).
    """
    key = idempotency.check_key(idempotency_key)
    upload = await receive_file(request, store, settings.max_upload_bytes)
    digest = upload.writer.sha256
    try:
        replayed = await run_in_threadpool(idempotency.replay, session, tenant_id, route, key, digest)
        if replayed is not None:
            return replayed.status_code, dict(replayed.response)
        existing = await run_in_threadpool(find_existing, session, tenant_id, digest)
        if existing is not None:
            status, body = 200, serialize(existing)
        else:
            await run_in_threadpool(quotas.check_upload, session, tenant_id, upload.writer.bytes, settings)
            status, body = 201, serialize(await create(upload))
    finally:
        upload.writer.abort()
    await run_in_threadpool(idempotency.remember, session, tenant_id, route, key, digest, status, body)
    return status, body
