"""The Python SDK of a Shears server: `Client(url, key)`, its uploads and jobs.

    import shears_client as shears

    client = shears.Client("https://shears.example.com", key)
    model = client.upload_model("model.keras")
    job = client.submit(model, "builtin:digits", target={"sparsity": 0.5}, devices=["host"])
    job.wait(progress=True)
    job.download("out/")
    print(job.report.size.tflite_bytes)

Errors are exceptions named for the server's answer (`NotFound`, `Conflict`, `QuotaExceeded`, ...,
shears_client.errors), each with the server's `code` and `status`.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from shears_client.errors import JobCancelled, JobFailed, WaitTimeout
from shears_client.http import Api
from shears_client.report import JobRecord, Report, SweepReport, Usage, typed_report

TERMINAL = ("succeeded", "failed", "cancelled")
PATH_SUFFIXES = (".keras", ".h5", ".tflite", ".npz", ".zip", ".tar", ".tgz", ".gz", ".csv")


def looks_like_a_path(value: str) -> bool:
    """A model or dataset argument that names a local file rather than an id."""
    return "/" in value or "\\" in value or value.lower().endswith(PATH_SUFFIXES)


class Progress:
    """Stage and percent: one updating line on a terminal, plain lines on change in CI logs."""

    def __init__(self, stream: IO[str], tty: bool) -> None:
        self.stream, self.tty = stream, tty
        self.last: tuple[str, int] | None = None
        self.width = 0
        self.open = False

    def update(self, job: dict[str, Any]) -> None:
        label = (job.get("stage") or job["status"]) if job["status"] == "running" else job["status"]
        percent = int(float(job.get("progress") or 0.0) * 100 + 1e-6)
        line = f"{job['id']}  {label:<11} {percent:3d}%"
        if (label, percent) == self.last:
            return
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = max(self.width, len(line))
            self.open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last = (label, percent)

    def end(self) -> None:
        """Finish the terminal's updating line (once)."""
        if self.open:
            self.stream.write("\n")
            self.stream.flush()
            self.open = False


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
    def record(self) -> JobRecord:
        """The job's record, typed."""
        return JobRecord.from_json(self.data)

    @property
    def result(self) -> dict[str, Any] | None:
        return self.data.get("result")

    def refresh(self) -> Job:
        self.data = self.client.api.get_json(f"/v1/jobs/{self.id}")
        return self

    def wait(self, progress: bool = False, timeout: float | None = None, interval: float = 1.0) -> Job:
        """Poll until the job ends; raises JobFailed, JobCancelled or WaitTimeout. `progress` prints
        its stage and percentage to stderr, as `shears remote submit --wait` does."""
        shown = Progress(sys.stderr, sys.stderr.isatty()) if progress else None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                self.refresh()
                if shown is not None:
                    shown.update(self.data)
                if self.status in TERMINAL:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise WaitTimeout(
                        f"timed out after {timeout:g} s; job {self.id} is still {self.status} and keeps running",
                        fix=f"wait longer, or cancel it (`shears remote cancel {self.id}`, or job.cancel())",
                    )
                time.sleep(interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic())))
        finally:
            if shown is not None:
                shown.end()
        if self.status == "failed":
            error = self.data.get("error") or {}
            message = f"job {self.id} failed: {error.get('code', 'unknown')}: {error.get('message', '')}"
            raise JobFailed(message, code=error.get("code"))
        if self.status == "cancelled":
            raise JobCancelled(f"job {self.id} was cancelled", code="cancelled")
        return self

    @property
    def report_json(self) -> dict[str, Any]:
        """The finished job's report as the server sent it."""
        if self._report is None:
            self._report = self.client.api.get_json(f"/v1/jobs/{self.id}/report")
        return self._report

    @property
    def report(self) -> Report:
        """The finished prune or profile job's report, typed: accuracy, size, latency per device, ... (a
        sweep's report read this way has its fields in `extra`: use `sweep_report`)."""
        return Report.from_json(self.report_json)

    @property
    def sweep_report(self) -> SweepReport:
        """The finished sweep's report, typed: its points, the dense baseline, the Pareto set per device."""
        typed = typed_report(self.report_json)
        if not isinstance(typed, SweepReport):
            raise TypeError(f"job {self.id} is not a sweep: read its report with `report`")
        return typed

    def artifacts(self) -> list[dict[str, Any]]:
        return list(self.client.api.get_json(f"/v1/jobs/{self.id}/artifacts")["items"])

    def download(self, directory: str | Path, names: list[str] | None = None) -> list[Path]:
        """Download the job's files (all, or those in `names`) into `directory`, checked by SHA-256."""
        folder = Path(directory)
        wanted = names if names is not None else [a["name"] for a in self.artifacts()]
        paths = []
        for name in wanted:
            path = folder / name
            self.client.api.download(f"/v1/jobs/{self.id}/artifacts/{name}", path)
            paths.append(path)
        return paths

    def cancel(self) -> Job:
        self.data = self.client.api.post_json(f"/v1/jobs/{self.id}/cancel")
        return self

    def delete(self) -> None:
        self.client.delete_job(self.id)


def _id(value: str | Upload | Job) -> str:
    return value.id if isinstance(value, Upload | Job) else value


class Client:
    """A Shears server, reached with one API key."""

    def __init__(self, url: str, key: str, *, tries: int = 5) -> None:
        self.api = Api(url, key, tries=tries)

    @classmethod
    def of(cls, api: Api) -> Client:
        """A client over an `Api` already made (as `shears remote` makes it from its flags)."""
        client = cls.__new__(cls)
        client.api = api
        return client

    def close(self) -> None:
        self.api.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _upload(self, route: str, path: str | Path, expires_in: int | None) -> Upload:
        query = f"?expires_in={expires_in}" if expires_in is not None else ""
        data = self.api.post_json(route + query, upload=Path(path))
        return Upload(str(data["id"]), data)

    def upload_model(self, path: str | Path, expires_in: int | None = None) -> Upload:
        """Upload a .keras, .h5 or .tflite file; the same bytes again return the existing model."""
        return self._upload("/v1/models", path, expires_in)

    def upload_dataset(
        self, path: str | Path, expires_in: int | None = None, *, resumable: bool = False, options: Any = None
    ) -> Upload:
        """Upload a dataset (.npz, .zip/.tar of class folders, .csv); `resumable` sends it in chunks (tus)
        that resume after a cut connection."""
        if resumable:
            from shears_client.upload import upload_resumable

            data = upload_resumable(self.api, Path(path), options, progress=False)
            return Upload(str(data["id"]), data)
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
        return Job(self, self.api.post_json("/v1/jobs", body))

    @staticmethod
    def _upload_if_file(value: str | Path | Upload, upload: Any) -> str:
        if isinstance(value, Path) or (isinstance(value, str) and looks_like_a_path(value)):
            return str(upload(value).id)
        return _id(value)

    def job(self, job_id: str) -> Job:
        return Job(self, {"id": job_id, "status": "unknown"}).refresh()

    def devices(self) -> list[dict[str, Any]]:
        """The device profiles the server can estimate latency on."""
        return list(self.api.get_json("/v1/devices").get("items", []))

    def usage(self) -> Usage:
        """What the tenant stores and runs, against its limits."""
        return Usage.from_json(self.api.get_json("/v1/usage"))

    def delete_model(self, model: str | Upload) -> None:
        self.api.request("DELETE", f"/v1/models/{_id(model)}")

    def delete_dataset(self, dataset: str | Upload) -> None:
        self.api.request("DELETE", f"/v1/datasets/{_id(dataset)}")

    def delete_job(self, job: str | Job) -> None:
        """Delete a job and its files; a running one is cancelled and removed once it stops."""
        self.api.request("DELETE", f"/v1/jobs/{_id(job)}")

    def webhook_secret(self, rotate: bool = False) -> str:
        """The secret that signs this tenant's webhook deliveries (`Shears-Signature`)."""
        answer = self.api.post_json("/v1/webhook-secret") if rotate else self.api.get_json("/v1/webhook-secret")
        return str(answer["secret"])
