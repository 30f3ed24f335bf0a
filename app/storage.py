"""The artifact store: uploaded and produced files, behind a small interface."""

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from app.settings import Settings

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    key: str
    bytes: int
    sha256: str


class ArtifactStore(Protocol):
    def writer(self) -> "ArtifactWriter": ...
    def put_file(self, key: str, path: Path) -> Stored: ...
    def open(self, key: str) -> AbstractContextManager[BinaryIO]: ...
    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A path to the file's bytes, valid inside the block."""
        ...

    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


class ArtifactWriter:
    """Streams chunks into a temporary file and hashes them; `commit(key)` publishes it."""

    def __init__(self, store: "LocalArtifactStore") -> None:
        self.store = store
        tmp_dir = store.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix="part-")
        self.tmp = Path(tmp)
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
        final = self.store.local_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, final)
        self.done = True
        return Stored(key=key, bytes=self.bytes, sha256=self._hash.hexdigest())

    def abort(self) -> None:
        """Drop the bytes; safe to call more than once, and a no-op after `commit`."""
        self._file.close()
        if not self.done:
            self.tmp.unlink(missing_ok=True)
            self.done = True


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

    def writer(self) -> ArtifactWriter:
        return ArtifactWriter(self)

    def put_file(self, key: str, path: Path) -> Stored:
        writer = self.writer()
        try:
            with path.open("rb") as src:
                while chunk := src.read(CHUNK):
                    writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer.commit(key)

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


def get_store(settings: Settings) -> ArtifactStore:
    return LocalArtifactStore(settings.resolved_storage_dir)
