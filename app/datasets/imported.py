"""A dataset named by an `s3://bucket/key` URL: fetched with the server's own S3 credentials and checked
like an upload, without the client sending the bytes.

Only URLs under a prefix the operator allowed (`SHEARS_DATASET_IMPORT_PREFIXES`, where `{tenant}` stands
for the caller's tenant name) are read, always from the configured S3 endpoint: the URL names an
object, never a host, so it cannot be turned against another address (no SSRF).
"""

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app import quotas
from app.datasets import repository, service
from app.errors import InvalidInput, NotFound, PayloadTooLarge, ShearsError
from app.settings import Settings
from app.storage import ArtifactStore, StorageUnavailable, _s3_client
from app.tables import Artifact, Dataset

BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class ImportForbidden(ShearsError):
    status_code = 403
    code = "import_forbidden"


def parse(url: str) -> tuple[str, str]:
    """(bucket, key) of an `s3://bucket/key` URL, or a 422 saying what is wrong."""
    if not url.startswith("s3://"):
        raise InvalidInput("a dataset URL must be s3://bucket/key (no other scheme is read)", code="invalid_url")
    bucket, _, key = url.removeprefix("s3://").partition("/")
    if not BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidInput(f"{bucket!r} is not an S3 bucket name", code="invalid_url")
    parts = key.split("/")
    if not key or key.endswith("/") or any(p in ("", ".", "..") for p in parts) or any(ord(c) < 32 for c in key):
        raise InvalidInput("the URL must name one object: s3://bucket/path/to/data.zip", code="invalid_url")
    return bucket, key


def allowed(url: str, tenant_name: str, settings: Settings) -> bool:
    prefixes = [p.strip().replace("{tenant}", tenant_name) for p in settings.dataset_import_prefixes.split(",")]
    return any(p and url.startswith(p if p.endswith("/") else p + "/") for p in prefixes)


class _Reader:
    """The server's S3 client for one object, with S3's answers turned into the caller's 4xx."""

    def __init__(self, settings: Settings, bucket: str, key: str) -> None:
        self.client = _s3_client(settings.s3_endpoint_url, settings.s3_region, quick=False)
        self.bucket, self.key, self.url = bucket, key, f"s3://{bucket}/{key}"

    def size(self) -> int:
        with self._answers():
            return int(self.client.head_object(Bucket=self.bucket, Key=self.key)["ContentLength"])

    def download(self, into: Path) -> str:
        with self._answers():
            self.client.download_file(self.bucket, self.key, str(into))
        digest = hashlib.sha256()
        with into.open("rb") as f:
            while chunk := f.read(8 << 20):
                digest.update(chunk)
        return digest.hexdigest()

    @contextmanager
    def _answers(self) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NoSuchBucket", "NotFound"):
                raise NotFound(f"no object {self.url} (or the server may not list it)", code="no_such_object") from exc
            if code in ("403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ImportForbidden(f"the server's S3 credentials cannot read {self.url} ({code})") from exc
            raise StorageUnavailable(f"S3 refused to read {self.url}: {code or exc}") from exc
        except BotoCoreError as exc:  # no credentials, endpoint unreachable
            raise StorageUnavailable(f"could not read {self.url}: {exc}") from exc


async def import_dataset(
    session: Session,
    tenant_id: str,
    tenant_name: str,
    settings: Settings,
    store: ArtifactStore,
    url: str,
    options: dict[str, Any],
) -> tuple[int, Dataset]:
    """201 and the new dataset, or 200 and the one with the same bytes; 403 outside the allowed prefixes."""
    bucket, key = parse(url)
    if not allowed(url, tenant_name, settings):
        raise ImportForbidden(
            f"{url} is outside the S3 prefixes this server imports from (SHEARS_DATASET_IMPORT_PREFIXES)"
        )
    spool = settings.data_dir / "imports"
    spool.mkdir(parents=True, exist_ok=True)
    path = spool / f"{tenant_id}-{secrets.token_hex(8)}"
    reader = _Reader(settings, bucket, key)
    size = await run_in_threadpool(reader.size)
    if size > settings.max_dataset_bytes:
        raise PayloadTooLarge(f"{url} is {size} bytes, over the {settings.max_dataset_bytes}-byte dataset limit")
    # The quota before the download (not after, as for an upload): an over-quota tenant does not make the
    # server fetch gigabytes, at the price of a 429 even when the same bytes are stored already.
    await run_in_threadpool(quotas.check_upload, session, tenant_id, size, settings)
    try:
        digest = await run_in_threadpool(reader.download, path)
        existing = await run_in_threadpool(repository.by_sha256, session, tenant_id, digest)
        if existing is not None:
            return 200, existing

        async def publish(storage_key: str, converted: Path | None) -> Artifact:
            return await service.put(store, tenant_id, storage_key, converted or path)

        with path.open("rb") as f:
            head = f.read(4096)
        dataset = await service.create_dataset(
            session,
            tenant_id,
            settings,
            path=path,
            filename=key.rsplit("/", 1)[-1],
            head=head,
            digest=digest,
            publish=publish,
            options=options,
        )
        return 201, dataset
    finally:
        path.unlink(missing_ok=True)
