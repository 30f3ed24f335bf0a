"""The artifact store: uploaded and produced files, behind a small interface.

Two implementations: a local folder (the default) and an S3 bucket (`SHEARS_STORAGE_URL=s3://bucket/prefix`).
Keys are made by the server, never by callers; both stores refuse a key that could escape them.
"""

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol, cast

import boto3  # type: ignore[import-untyped]
from boto3.exceptions import S3UploadFailedError  # type: ignore[import-untyped]
from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]
from botocore.config import Config  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from app.errors import ShearsError
from app.settings import Settings, get_settings

CHUNK = 1024 * 1024
# Parts uploaded (or ranges downloaded) at once: bounds a transfer's memory to this many parts.
S3_CONCURRENCY = 4


@dataclass(frozen=True)
class Stored:
    key: str
    bytes: int
    sha256: str


class StorageUnavailable(ShearsError):
    status_code = 503
    code = "storage_unavailable"
    retry_after = 5


class ArtifactStore(Protocol):
    def writer(self) -> "ArtifactWriter": ...
    def put_file(self, key: str, path: Path) -> Stored: ...
    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """The stored bytes as a file to read from, without reading them all at once."""
        ...

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A path to the file's bytes, valid inside the block."""
        ...

    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def presigned_url(self, key: str, filename: str, expires_s: int) -> str | None:
        """A URL that downloads the file without an API key for `expires_s`; None if the store has none."""
        ...

    def readiness(self) -> str:
        """`ok`, or why the store cannot be used now."""
        ...


class ArtifactWriter:
    """Streams chunks into a local temporary file and hashes them; `commit(key)` hands it to the store."""

    def __init__(self, spool_dir: Path | None, publish: Callable[[Path, str], None]) -> None:
        fd, tmp = tempfile.mkstemp(dir=spool_dir, prefix="part-")
        self.tmp = Path(tmp)
        self._publish = publish
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.bytes = 0
        self.head = b""
        self.done = False

    def write(self, chunk: bytes) -> None:
        if len(self.head) < 1024:
            self.head += chunk[: 1024 - len(self.head)]
        self._file.write(chunk)
        self._hash.update(chunk)
        self.bytes += len(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def close(self) -> None:
        """Finish writing: the bytes are then complete at `tmp` for checks before `commit`."""
        self._file.close()

    def commit(self, key: str) -> Stored:
        self._file.close()
        self._publish(self.tmp, key)
        self.tmp.unlink(missing_ok=True)  # gone already when the store moved it into place
        self.done = True
        return Stored(key=key, bytes=self.bytes, sha256=self._hash.hexdigest())

    def abort(self) -> None:
        """Drop the bytes; safe to call more than once, and a no-op after `commit`."""
        self._file.close()
        if not self.done:
            self.tmp.unlink(missing_ok=True)
            self.done = True


def _copy_in(writer: ArtifactWriter, key: str, path: Path) -> Stored:
    """Store the file at `path` under `key` through `writer`, so it is hashed the same way as an upload."""
    try:
        with path.open("rb") as src:
            while chunk := src.read(CHUNK):
                writer.write(chunk)
        return writer.commit(key)
    finally:
        writer.abort()  # a no-op after a commit; drops the spooled copy when the store refused it


class LocalArtifactStore:
    """Files under one folder; keys are relative paths made by the server, never by callers."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def local_path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key escapes the store: {key}")
        return path

    def _publish(self, tmp: Path, key: str) -> None:
        final = self.local_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

    def writer(self) -> ArtifactWriter:
        # The spool is inside the store so that publishing is an atomic rename.
        spool = self.root / ".tmp"
        spool.mkdir(parents=True, exist_ok=True)
        return ArtifactWriter(spool, self._publish)

    def put_file(self, key: str, path: Path) -> Stored:
        return _copy_in(self.writer(), key, path)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with self.local_path(key).open("rb") as f:
            yield f

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        yield self.local_path(key)

    def exists(self, key: str) -> bool:
        return self.local_path(key).exists()

    def delete(self, key: str) -> None:
        path = self.local_path(key)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def presigned_url(self, key: str, filename: str, expires_s: int) -> str | None:
        return None

    def readiness(self) -> str:
        try:
            spool = self.root / ".tmp"
            spool.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=spool, prefix="ready-") as probe:
                probe.write(b"ok")
        except OSError as exc:
            return f"{self.root} is not writable: {exc.strerror or type(exc).__name__}"
        return "ok"


@contextmanager
def _s3_call(action: str) -> Iterator[None]:
    """Turn S3's errors into a missing file (404) or a 503 the client can retry."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            raise FileNotFoundError(action) from exc
        raise StorageUnavailable(f"the artifact store refused to {action}: {code or exc}") from exc
    except (BotoCoreError, S3UploadFailedError) as exc:  # upload_file wraps S3's refusals in the latter
        raise StorageUnavailable(f"the artifact store could not {action}: {exc}") from exc


class S3ArtifactStore:
    """Objects in one bucket under a prefix, on AWS S3 or any S3-compatible service.

    Uploads are spooled to a local temporary file while they are hashed and checked, then sent
    (in parts above the multipart threshold); reads stream the object's body.
    """

    def __init__(
        self, client: Any, bucket: str, prefix: str, transfer: TransferConfig, probe: Any = None, signer: Any = None
    ) -> None:
        self.client, self.bucket, self.transfer = client, bucket, transfer
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._probe = probe or client
        # Presigned URLs name the host they are signed for: clients may reach the store by another
        # address than the servers do (compose's `minio:9000` vs `localhost:9000`).
        self._signer = signer or client

    def object_key(self, key: str) -> str:
        parts = PurePosixPath(key).parts
        if not key or key.startswith("/") or any(p in ("..", ".") for p in parts) or "\\" in key:
            raise ValueError(f"storage key escapes the store: {key}")
        return self.prefix + key

    def _publish(self, tmp: Path, key: str) -> None:
        with _s3_call(f"store {key}"):
            self.client.upload_file(str(tmp), self.bucket, self.object_key(key), Config=self.transfer)

    def writer(self) -> ArtifactWriter:
        return ArtifactWriter(None, self._publish)

    def put_file(self, key: str, path: Path) -> Stored:
        return _copy_in(self.writer(), key, path)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with _s3_call(f"read {key}"):
            body = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key))["Body"]
        try:
            yield cast(BinaryIO, body)  # botocore's StreamingBody: read(n), iter_chunks(), close()
        finally:
            body.close()

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="shears-s3-"))
        try:
            path = folder / PurePosixPath(key).name  # the name keeps its suffix (.keras, .npz)
            with _s3_call(f"read {key}"):
                self.client.download_file(self.bucket, self.object_key(key), str(path), Config=self.transfer)
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def exists(self, key: str) -> bool:
        try:
            with _s3_call(f"look up {key}"):
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        """Delete the object and, as the local store does for a folder, everything under `key/`."""
        name = self.object_key(key)
        with _s3_call(f"delete {key}"):
            self.client.delete_object(Bucket=self.bucket, Key=name)
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=name + "/"):
                objects = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if objects:
                    self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})

    def presigned_url(self, key: str, filename: str, expires_s: int) -> str | None:
        params = {
            "Bucket": self.bucket,
            "Key": self.object_key(key),
            "ResponseContentDisposition": f'attachment; filename="{filename}"',
        }
        with _s3_call(f"sign a URL for {key}"):
            return str(self._signer.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_s))

    def readiness(self) -> str:
        try:
            self._probe.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            reason = {"404": "no such bucket", "403": "access denied"}.get(str(code), f"error {code}")
            return f"s3://{self.bucket}: {reason}"
        except BotoCoreError as exc:
            return f"s3://{self.bucket} unreachable: {exc}"
        return "ok"


def _s3_client(endpoint_url: str, region: str, quick: bool) -> Any:
    # Credentials come from boto3's usual chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, a role.
    config = Config(
        connect_timeout=2 if quick else 10,
        read_timeout=5 if quick else 60,
        retries={"max_attempts": 1 if quick else 3, "mode": "standard"},
        max_pool_connections=2 * S3_CONCURRENCY,
        signature_version="s3v4",  # presigned URLs too: regions opened since 2014 refuse the older v2
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )


@lru_cache(maxsize=8)
def _s3_store(
    url: str, endpoint_url: str, region: str, multipart_bytes: int, public_endpoint_url: str = ""
) -> S3ArtifactStore:
    """One store (and connection pool) per configuration: boto3 clients are thread-safe and slow to make."""
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    transfer = TransferConfig(
        multipart_threshold=multipart_bytes, multipart_chunksize=multipart_bytes, max_concurrency=S3_CONCURRENCY
    )
    return S3ArtifactStore(
        _s3_client(endpoint_url, region, quick=False),
        bucket,
        prefix,
        transfer,
        probe=_s3_client(endpoint_url, region, quick=True),
        signer=_s3_client(public_endpoint_url, region, quick=False) if public_endpoint_url else None,
    )


def get_store(settings: Settings) -> ArtifactStore:
    if settings.storage_url:
        return _s3_store(
            settings.storage_url,
            settings.s3_endpoint_url,
            settings.s3_region,
            settings.s3_multipart_bytes,
            settings.s3_public_endpoint_url,
        )
    return LocalArtifactStore(settings.resolved_storage_dir)


def readiness() -> str:
    """`ok`, or why the configured store cannot be used now (for `/readyz`)."""
    try:
        return get_store(get_settings()).readiness()
    except Exception as exc:  # noqa: BLE001 - a store that cannot even be built is not ready either
        return f"unusable: {type(exc).__name__}: {exc}"
