"""The Python SDK of a Shears server: `shears.Client(url, key)`, built on `shears remote`'s HTTP client.

    client = shears.Client("https://shears.example.com", key)
    model = client.upload_model("model.keras")
    job = client.submit(model, "builtin:digits", target={"sparsity": 0.5}, devices=["host"])
    job.wait(progress=True)
    job.download("out/")
    print(job.report["tflite_bytes"])

Errors are exceptions named for the server's answer (`NotFound`, `Conflict`, `QuotaExceeded`, ...),
each with the server's `code` and `status`. Only httpx and click are imported: no TensorFlow.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shears import remote


class ShearsError(Exception):
    """An error of the server or of the connection, with the server's error `code` when it sent one."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.status = message, code, status


class InvalidRequest(ShearsError):
    """400/422: the request was refused as it is (a bad spec, a file that is not a model...)."""


class AuthenticationError(ShearsError):
    """401: the API key is missing, wrong or revoked."""


class NotFound(ShearsError):
    """404: no such model, dataset or job for this key's tenant."""


class Conflict(ShearsError):
    """409: not now (a job not finished yet, a model still used by a running job...)."""


class PayloadTooLarge(ShearsError):
    """413: the file is over the server's upload limit."""


class UnsupportedFormat(ShearsError):
    """415: the file is not a format the server takes."""


class ClientTooOld(ShearsError):
    """426: this client is older than the server supports: upgrade it."""


class QuotaExceeded(ShearsError):
    """429: over a quota; `retry_after` says when to try again."""

    retry_after: float | None = None


class ServerUnavailable(ShearsError):
    """The server could not be reached, or kept answering 5xx, after the retries."""


class JobFailed(ShearsError):
    """The job ended `failed`; `code` and `message` are the job's error."""


class JobCancelled(ShearsError):
    """The job was cancelled."""


class WaitTimeout(ShearsError):
    """`Job.wait(timeout=...)` passed before the job finished (it keeps running)."""


BY_STATUS: dict[int, type[ShearsError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedFormat,
    422: InvalidRequest,
    426: ClientTooOld,
    429: QuotaExceeded,
}


@contextmanager
def _errors() -> Iterator[None]:
    """`shears remote`'s errors as this SDK's exceptions."""
    try:
        yield
    except remote.RemoteError as exc:
        status = exc.status
        kind = BY_STATUS.get(status or 0, ServerUnavailable if status is None or status >= 500 else ShearsError)
        error = kind(exc.message, code=exc.code, status=status)
        if isinstance(error, QuotaExceeded):
            error.retry_after = exc.retry_after
        raise error from None


@dataclass
class Upload:
    """An uploaded model or dataset: its `id` and the server's record (`data`)."""

    id: str
    data: dict[str, Any]


@dataclass
class Job:
    """A submitted job; `refresh()` reads its record again, `wait()` follows it to the end."""

    client: Client
    data: dict[str, Any]
    _report: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    @property
    def status(self) -> str:
        return str(self.data["status"])

    @property
    def result(self) -> dict[str, Any] | None:
        return self.data.get("result")

    def refresh(self) -> Job:
        with _errors():
            self.data = self.client.api.get_json(f"/v1/jobs/{self.id}")
        return self

    def wait(self, progress: bool = False, timeout: float | None = None, interval: float = 1.0) -> Job:
        """Poll until the job ends; raises JobFailed, JobCancelled or WaitTimeout. `progress` prints
        its stage and percentage to stderr, as `shears remote submit --wait` does."""
        shown = remote.Progress(sys.stderr, sys.stderr.isatty()) if progress else None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                self.refresh()
                if shown is not None:
                    shown.update(self.data)
                if self.status in remote.TERMINAL:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(f"job {self.id} is still {self.status} after {timeout:g} s")
                time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        finally:
            if shown is not None:
                shown.end()
        if self.status == "failed":
            error = self.data.get("error") or {}
            raise JobFailed(f"job {self.id} failed: {error.get('message')}", code=error.get("code"))
        if self.status == "cancelled":
            raise JobCancelled(f"job {self.id} was cancelled", code="cancelled")
        return self

    @property
    def report(self) -> dict[str, Any]:
        """The finished job's report (accuracy, size, latency per device, ...)."""
        if self._report is None:
            with _errors():
                self._report = self.client.api.get_json(f"/v1/jobs/{self.id}/report")
        return self._report

    def artifacts(self) -> list[dict[str, Any]]:
        with _errors():
            return list(self.client.api.get_json(f"/v1/jobs/{self.id}/artifacts")["items"])

    def download(self, directory: str | Path, names: list[str] | None = None) -> list[Path]:
        """Download the job's files (all, or those in `names`) into `directory`, checked by SHA-256."""
        folder = Path(directory)
        wanted = names if names is not None else [a["name"] for a in self.artifacts()]
        paths = []
        with _errors():
            for name in wanted:
                path = folder / name
                self.client.api.download(f"/v1/jobs/{self.id}/artifacts/{name}", path)
                paths.append(path)
        return paths

    def cancel(self) -> Job:
        with _errors():
            self.data = self.client.api.post_json(f"/v1/jobs/{self.id}/cancel")
        return self

    def delete(self) -> None:
        self.client.delete_job(self.id)


def _id(value: str | Upload | Job) -> str:
    return value.id if isinstance(value, Upload | Job) else value


class Client:
    """A Shears server, reached with one API key."""

    def __init__(self, url: str, key: str, *, tries: int = 5) -> None:
        self.api = remote.Api(url, key, tries=tries)

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _upload(self, route: str, path: str | Path, expires_in: int | None) -> Upload:
        query = f"?expires_in={expires_in}" if expires_in is not None else ""
        with _errors():
            data = self.api.post_json(route + query, upload=Path(path))
        return Upload(str(data["id"]), data)

    def upload_model(self, path: str | Path, expires_in: int | None = None) -> Upload:
        """Upload a .keras, .h5 or .tflite file; the same bytes again return the existing model."""
        return self._upload("/v1/models", path, expires_in)

    def upload_dataset(self, path: str | Path, expires_in: int | None = None) -> Upload:
        """Upload an .npz with x_train, y_train, x_val, y_val."""
        return self._upload("/v1/datasets", path, expires_in)

    def submit(
        self,
        model: str | Path | Upload,
        data: str | Path | Upload | None = None,
        *,
        target: dict[str, Any] | None = None,
        devices: list[str] | None = None,
        **spec: Any,
    ) -> Job:
        """Queue a job. `model` and `data` are ids, uploads, or local files (uploaded first); `spec`
        holds any other field of the job spec (kind, granularity, finetune, quantization, ...)."""
        body: dict[str, Any] = {"model_id": self._upload_if_file(model, self.upload_model), **spec}
        if data is not None:
            body["dataset_id"] = self._upload_if_file(data, self.upload_dataset)
        if target is not None:
            body["target"] = target
        if devices is not None:
            body["devices"] = devices
        with _errors():
            return Job(self, self.api.post_json("/v1/jobs", body))

    @staticmethod
    def _upload_if_file(value: str | Path | Upload, upload: Any) -> str:
        if isinstance(value, Path) or (isinstance(value, str) and remote._looks_like_a_path(value)):
            return str(upload(value).id)
        return _id(value) if isinstance(value, Upload | str) else str(value)

    def job(self, job_id: str) -> Job:
        return Job(self, {"id": job_id, "status": "unknown"}).refresh()

    def devices(self) -> list[dict[str, Any]]:
        """The device profiles the server can estimate latency on."""
        with _errors():
            return list(self.api.get_json("/v1/devices").get("items", []))

    def usage(self) -> dict[str, Any]:
        with _errors():
            return self.api.get_json("/v1/usage")

    def _delete(self, path: str) -> None:
        with _errors():
            self.api.request("DELETE", path)

    def delete_model(self, model: str | Upload) -> None:
        self._delete(f"/v1/models/{_id(model)}")

    def delete_dataset(self, dataset: str | Upload) -> None:
        self._delete(f"/v1/datasets/{_id(dataset)}")

    def delete_job(self, job: str | Job) -> None:
        """Delete a job and its files; a running one is cancelled and removed once it stops."""
        self._delete(f"/v1/jobs/{_id(job)}")
