"""`shears remote`: the build-pipeline client of a Shears server (httpx + click only, no engine)."""

from __future__ import annotations

import copy
import email.utils
import hashlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import IO, Any, NoReturn

import click
import httpx

EXIT_OK = 0
EXIT_REQUEST = 1  # a usage error, or the server refused the request (4xx)
EXIT_JOB_FAILED = 2
EXIT_JOB_CANCELLED = 3
EXIT_TIMEOUT = 4
EXIT_BUDGET = 5
EXIT_UNREACHABLE = 6  # network errors or 5xx answers, still failing after the retries
EXIT_INTERRUPTED = 130

TERMINAL = ("succeeded", "failed", "cancelled")
RETRY_STATUSES = (502, 503, 504)
RETRY_AFTER_CAP_S = 120.0


def client_version() -> str:
    """This client's version, sent with every request (`X-Shears-Client`) so the server can refuse an old one."""
    for dist in ("shears", "shears-client"):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


VERSION = client_version()
USER_AGENT = f"shears-remote/{VERSION}"

HELP = f"""Drive a Shears server from a build pipeline.

Reads SHEARS_URL and SHEARS_API_KEY from the environment (--url and --api-key override them).
Network errors and 502/503/504 answers are retried with exponential backoff (Retry-After is
respected); every POST carries an Idempotency-Key so a retried request is the same request.

\b
Exit codes:
  {EXIT_OK}    success (and, with --wait, every budget met)
  {EXIT_REQUEST}    usage error, or the server refused the request (4xx; its error is printed)
  {EXIT_JOB_FAILED}    the job failed (its error code and message are printed)
  {EXIT_JOB_CANCELLED}    the job was cancelled
  {EXIT_TIMEOUT}    --timeout passed before the job finished (the job keeps running)
  {EXIT_BUDGET}    the job succeeded but missed a budget (--max-latency-ms, --max-size-kb,
       --max-accuracy-drop); each miss is printed with the figure and the margin
  {EXIT_UNREACHABLE}    the server could not be reached, or kept answering 5xx, after the retries
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C) while waiting
"""


class RemoteError(click.ClickException):
    """An error with its own exit code; click prints `Error: <message>` to stderr."""

    exit_code = EXIT_REQUEST
    status: int | None = None
    """The HTTP status, when the server answered (None: it could not be reached)."""
    code: str | None = None
    """The server's error code (`not_found`, `quota_exceeded`, ...), when it sent one."""
    retry_after: float | None = None


class Refused(RemoteError):
    exit_code = EXIT_REQUEST


class JobFailed(RemoteError):
    exit_code = EXIT_JOB_FAILED


class JobCancelled(RemoteError):
    exit_code = EXIT_JOB_CANCELLED


class TimedOut(RemoteError):
    exit_code = EXIT_TIMEOUT


class Unreachable(RemoteError):
    exit_code = EXIT_UNREACHABLE


class UsageError(click.UsageError):
    exit_code = EXIT_REQUEST


class RemoteGroup(click.Group):
    """Usage errors exit 1 here (not click's 2), so that 2 always means "the job failed"."""

    @staticmethod
    def _usage(exc: click.UsageError) -> UsageError:
        return UsageError(exc.format_message(), exc.ctx)

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except UsageError:
            raise
        except click.UsageError as exc:
            raise self._usage(exc) from exc

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError:
            raise
        except click.UsageError as exc:
            raise self._usage(exc) from exc


# HTTP ------------------------------------------------------------------------------------


def retry_after_s(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_text(response: httpx.Response) -> str:
    """`HTTP 422 invalid_request: <message>` from the server's `{"error": {"code", "message"}}`."""
    try:
        error = response.json()["error"]
        return f"HTTP {response.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500]
        return f"HTTP {response.status_code}: {text or response.reason_phrase}"


@dataclass
class Api:
    """A Shears server: retries, error handling and the few calls the commands need."""

    url: str
    key: str
    tries: int = 5
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.key}", "User-Agent": USER_AGENT, "X-Shears-Client": VERSION},
            timeout=httpx.Timeout(120.0, connect=10.0),
            transport=self.transport,
        )

    def close(self) -> None:
        self.http.close()

    def _retrying(self, attempt: Callable[[], httpx.Response], what: str) -> httpx.Response:
        delay = self.backoff_s
        for n in range(1, self.tries + 1):
            try:
                response = attempt()
            except httpx.TransportError as exc:
                if n == self.tries:
                    raise Unreachable(
                        f"{what}: cannot reach {self.url} after {self.tries} tries ({type(exc).__name__}: {exc})"
                    ) from exc
                wait, reason = delay, f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code not in RETRY_STATUSES or n == self.tries:
                    return response
                hint = retry_after_s(response)
                wait = min(hint, RETRY_AFTER_CAP_S) if hint is not None else delay
                reason = f"HTTP {response.status_code}"
                response.close()
            click.echo(f"shears: {what}: {reason}; retry {n}/{self.tries - 1} in {wait:.1f} s", err=True)
            self.sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _checked(self, response: httpx.Response, what: str) -> httpx.Response:
        if response.status_code < 400:
            return response
        error = (Refused if response.status_code < 500 else Unreachable)(f"{what}: {error_text(response)}")
        error.status, error.retry_after = response.status_code, retry_after_s(response)
        try:
            error.code = str(response.json()["error"]["code"])
        except (ValueError, KeyError, TypeError):
            pass
        raise error

    def request(self, method: str, path: str, *, json_body: Any = None, upload: Path | None = None) -> httpx.Response:
        """One call, retried; POSTs carry one Idempotency-Key across their retries. 4xx/5xx raise RemoteError."""
        headers = {"Idempotency-Key": str(uuid.uuid4())} if method == "POST" else {}
        what = f"{method} {path}"

        def attempt() -> httpx.Response:
            if upload is None:
                return self.http.request(method, path, json=json_body, headers=headers)
            with upload.open("rb") as f:  # reopened on every try, so a retry sends the whole file again
                return self.http.request(method, path, files={"file": (upload.name, f)}, headers=headers)

        return self._checked(self._retrying(attempt, what), what)

    def get_json(self, path: str) -> dict[str, Any]:
        return dict(self.request("GET", path).json())

    def post_json(self, path: str, body: Any = None, upload: Path | None = None) -> dict[str, Any]:
        return dict(self.request("POST", path, json_body=body, upload=upload).json())

    def download(self, path: str, dest: Path) -> int:
        """Stream `path` to `dest` (atomically; checked against X-Content-SHA256 when sent); returns its size."""
        part = dest.with_name(dest.name + ".part")
        digest: dict[str, str] = {}

        def attempt() -> httpx.Response:
            response = self.http.send(self.http.build_request("GET", path), stream=True)
            try:
                if response.status_code != 200:
                    response.read()
                    return response
                sha = hashlib.sha256()
                with part.open("wb") as f:
                    for chunk in response.iter_bytes(1 << 20):
                        f.write(chunk)
                        sha.update(chunk)
                digest["sha256"] = sha.hexdigest()
                return response
            finally:
                response.close()

        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            response = self._checked(self._retrying(attempt, f"GET {path}"), f"GET {path}")
            expected = response.headers.get("x-content-sha256")
            if expected and expected != digest.get("sha256"):
                raise Unreachable(f"GET {path}: the download does not match its sha256; try again")
            part.replace(dest)
        finally:
            part.unlink(missing_ok=True)
        return dest.stat().st_size


@dataclass
class Settings:
    url: str | None
    key: str | None
    api: Api | None = None

    def client(self) -> Api:
        if self.api is None:
            if not self.url:
                raise UsageError("no server: set SHEARS_URL or pass --url")
            if not self.key:
                raise UsageError("no API key: set SHEARS_API_KEY or pass --api-key")
            self.api = Api(self.url, self.key)
        return self.api


# Budgets and output ----------------------------------------------------------------------


def _num(value: float) -> str:
    return f"{value:.4g}"


def check_budgets(
    report: dict[str, Any],
    *,
    max_latency_ms: float | None = None,
    devices: tuple[str, ...] | list[str] = ("host",),
    max_size_kb: float | None = None,
    max_accuracy_drop: float | None = None,
) -> list[str]:
    """Each missed budget as a sentence with the figure, the budget and the margin; empty when all are met."""
    misses: list[str] = []
    if max_latency_ms is not None:
        entries = {e.get("device"): e for e in report.get("latency") or [] if isinstance(e, dict)}
        for device in devices or ("host",):
            entry = entries.get(device)
            figure = None if entry is None else entry.get("estimate_ms", entry.get("measured_ms"))
            if entry is None or figure is None:
                listed = ", ".join(str(d) for d in entries) or "none"
                misses.append(
                    f"latency on {device}: the report has no figure for this device "
                    f"(devices in the report: {listed}); budget {_num(max_latency_ms)} ms"
                )
            elif figure > max_latency_ms:
                kind = "estimated" if "estimate_ms" in entry else "measured"
                misses.append(
                    f"latency on {device}: {_num(figure)} ms ({kind}), budget {_num(max_latency_ms)} ms, "
                    f"over by {_num(figure - max_latency_ms)} ms"
                )
    if max_size_kb is not None:
        size = report.get("size", {}).get("tflite_bytes")
        if size is None:
            misses.append(f"size: the report has no size.tflite_bytes; budget {_num(max_size_kb)} KB")
        elif size / 1024 > max_size_kb:
            kb = size / 1024
            misses.append(
                f"size: {kb:.1f} KB ({size} bytes), budget {_num(max_size_kb)} KB, over by {kb - max_size_kb:.1f} KB"
            )
    if max_accuracy_drop is not None:
        acc = report.get("accuracy", {})
        before, after, metric = acc.get("before"), acc.get("after"), acc.get("metric", "accuracy")
        if before is None or after is None:
            misses.append(f"accuracy drop: the report has no accuracy before/after; budget {max_accuracy_drop}")
        else:
            # MAE and other errors grow when the model gets worse; accuracy shrinks.
            drop = after - before if metric == "mae" else before - after
            if drop > max_accuracy_drop + 1e-12:
                name = "error increase" if metric == "mae" else "accuracy drop"
                misses.append(
                    f"{name} ({metric}): {_num(drop)} ({_num(before)} -> {_num(after)}), "
                    f"budget {_num(max_accuracy_drop)}, over by {_num(drop - max_accuracy_drop)}"
                )
    return misses


def summary(job: dict[str, Any], report: dict[str, Any], model_path: Path, report_path: Path | None) -> str:
    acc = report.get("accuracy", {})
    sparsity = report.get("sparsity", {})
    size = report.get("size", {})
    base = report.get("baseline", {})
    lines = [f"{job['id']} succeeded"]
    if "before" in acc and "after" in acc:
        lines.append(
            f"  {acc.get('metric', 'accuracy'):<10} {acc['before']:.4f} -> {acc['after']:.4f} "
            f"({acc.get('split', 'val')} split)"
        )
    if "overall" in sparsity:
        target = f", target {sparsity['target']}" if sparsity.get("target") is not None else ""
        lines.append(f"  sparsity   {sparsity['overall']:.3f} overall{target}")
    if "tflite_bytes" in size:
        was = base.get("size", {}).get("tflite_bytes")
        baseline = f", dense {was / 1024:.1f} KB" if was else ""
        gz = f" ({size['tflite_gzip_bytes'] / 1024:.1f} KB gzipped)" if "tflite_gzip_bytes" in size else ""
        lines.append(f"  size       {size['tflite_bytes'] / 1024:.1f} KB .tflite{gz}{baseline}")
    base_latency = {e.get("device"): e for e in base.get("latency") or []}
    for entry in report.get("latency") or []:
        ms = entry.get("estimate_ms", entry.get("measured_ms"))
        if ms is None:
            continue
        kind = "estimated" if "estimate_ms" in entry else "measured"
        dense = base_latency.get(entry.get("device"), {})
        dense_ms = dense.get("estimate_ms", dense.get("measured_ms"))
        was = f", dense {dense_ms:.4g} ms" if dense_ms is not None else ""
        lines.append(f"  latency    {entry.get('device')}: {ms:.4g} ms {kind}{was}")
    if report.get("guard", {}).get("note"):
        lines.append(f"  guard      {report['guard']['note']}")
    lines.append(f"  model      {model_path}")
    if report_path is not None:
        lines.append(f"  report     {report_path}")
    return "\n".join(lines)


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
            self.stream.flush()
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


# Parameters ------------------------------------------------------------------------------


class Duration(click.ParamType[float]):
    """`90`, `90s`, `30m`, `1h`, `1h30m` -> seconds."""

    name = "duration"
    UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip().lower()
        parts = re.findall(r"(\d+(?:\.\d+)?)([smh]?)", text)
        if not text or "".join(n + u for n, u in parts) != text or (len(parts) > 1 and not all(u for _, u in parts)):
            self.fail(f"{value!r} is not a duration like 90s, 30m, 1h or 1h30m", param, ctx)
        seconds = sum(float(n) * self.UNITS[u] for n, u in parts)
        if seconds <= 0:
            self.fail("the timeout must be positive", param, ctx)
        return seconds


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _print_record(record: dict[str, Any], quiet: bool) -> None:
    if quiet:
        click.echo(record["id"])
    else:
        _print_json(record)


def _looks_like_a_path(value: str) -> bool:
    return "/" in value or os.sep in value or value.lower().endswith((".keras", ".h5", ".tflite", ".npz"))


def _resolve_model(api: Api, value: str) -> str:
    path = Path(value)
    if path.is_file():
        model = api.post_json("/v1/models", upload=path)
        click.echo(f"uploaded {path} as {model['id']}", err=True)
        return str(model["id"])
    if _looks_like_a_path(value):
        raise click.BadParameter(f"no such file: {value}", param_hint="--model")
    return value


def _resolve_data(api: Api, value: str) -> tuple[str, dict[str, Any] | None]:
    """The dataset id, and the dataset's record when this command uploaded it."""
    if value.startswith("builtin:"):
        return value, None
    path = Path(value)
    if path.is_file():
        dataset = api.post_json("/v1/datasets", upload=path)
        click.echo(f"uploaded {path} as {dataset['id']}", err=True)
        return str(dataset["id"]), dataset
    if _looks_like_a_path(value):
        raise click.BadParameter(f"no such file: {value}", param_hint="--data")
    return value, None


def _section(spec: dict[str, Any], name: str) -> dict[str, Any]:
    section = spec.setdefault(name, {})
    if not isinstance(section, dict):
        raise click.BadParameter(f"{name} must be an object in the spec file", param_hint="--spec")
    return section


def build_spec(base: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The spec file's fields, with every flag that was given written over them."""
    spec = copy.deepcopy(base)
    for name in ("method", "granularity", "quantization", "seed", "max_accuracy_drop"):
        if flags.get(name) is not None:
            spec[name] = flags[name]
    target = {k: flags[k] for k in ("sparsity", "macs_reduction") if flags.get(k) is not None}
    if target:
        spec["target"] = target  # a target is one of several kinds: a flag replaces the file's
    sections = {
        "schedule": {"schedule": "kind", "steps": "steps"},
        "finetune": {"epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate"},
    }
    for section, names in sections.items():
        given = {key: flags[flag] for flag, key in names.items() if flags.get(flag) is not None}
        if given:
            _section(spec, section).update(given)
    if flags.get("devices"):
        spec["devices"] = list(flags["devices"])
    return spec


# Commands --------------------------------------------------------------------------------


@click.group(cls=RemoteGroup, help=HELP)
@click.option("--url", envvar="SHEARS_URL", help="Server address, e.g. https://shears.example.com [SHEARS_URL].")
@click.option("--api-key", envvar="SHEARS_API_KEY", help="API key [SHEARS_API_KEY].")
@click.pass_context
def remote(ctx: click.Context, url: str | None, api_key: str | None) -> None:
    settings = Settings(url, api_key)
    ctx.obj = settings

    def _close() -> None:
        if settings.api is not None:
            settings.api.close()

    ctx.call_on_close(_close)


pass_settings = click.make_pass_decorator(Settings)


@remote.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Print only the model id.")
@pass_settings
def upload(settings: Settings, model: Path, quiet: bool) -> None:
    """Upload MODEL (.keras, .h5 or .tflite); prints the model's record."""
    _print_record(settings.client().post_json("/v1/models", upload=model), quiet)


@remote.group()
def datasets() -> None:
    """Datasets (.npz; .zip/.tar of image or WAV class folders; .csv/.parquet with a label column; TFRecord)."""


RESUMABLE_ABOVE = 256 << 20


@datasets.command("upload")
@click.argument("data", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-q", "--quiet", is_flag=True, help="Print only the dataset id.")
@click.option("--options", "options", help="Dataset options as JSON, e.g. '{\"image_size\": [96, 96]}'.")
@click.option(
    "--resumable/--no-resumable",
    default=None,
    help=f"Chunked upload that resumes after a cut (tus); default: above {RESUMABLE_ABOVE >> 20} MiB.",
)
@pass_settings
def datasets_upload(settings: Settings, data: Path, quiet: bool, options: str | None, resumable: bool | None) -> None:
    """Upload DATA; prints the dataset's record (with the server's check summary)."""
    from urllib.parse import urlencode

    from shears.upload import upload_resumable

    try:
        parsed = json.loads(options) if options else None
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--options") from exc
    api = settings.client()
    if resumable or (resumable is None and data.stat().st_size > RESUMABLE_ABOVE):
        record = upload_resumable(api, data, parsed, progress=not quiet)
    else:
        query = f"?{urlencode({'options': json.dumps(parsed)})}" if parsed else ""
        record = api.post_json(f"/v1/datasets{query}", upload=data)
    _print_record(record, quiet)


def _out_path(out: Path | None, job_id: str) -> Path:
    return out if out is not None else Path(f"{job_id}.tflite")


def _fetch_results(api: Api, job_id: str, out: Path, report_path: Path | None) -> dict[str, Any]:
    api.download(f"/v1/jobs/{job_id}/model.tflite", out)
    response = api.request("GET", f"/v1/jobs/{job_id}/report")
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_bytes(response.content)
    return dict(response.json())


def _pick_from_sweep(
    api: Api, sweep: dict[str, Any], out: Path, report_path: Path | None, budgets: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The most accurate point of a finished sweep that meets every budget: its model is downloaded
    to `out`; the sweep's report (all points, the Pareto set) goes to `report_path`. With no point
    meeting them, the most accurate point's misses are returned and nothing is downloaded."""
    response = api.request("GET", f"/v1/jobs/{sweep['id']}/report")
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_bytes(response.content)
    points = sorted(
        (p for p in response.json().get("points", []) if p.get("status") == "succeeded"),
        key=lambda p: -(p.get("accuracy") or 0.0),
    )
    click.echo(f"sweep {sweep['id']}: {len(points)} points succeeded", err=True)
    first: tuple[dict[str, Any], dict[str, Any], list[str]] | None = None
    for point in points:
        job = api.get_json(f"/v1/jobs/{point['job_id']}")
        report = api.get_json(f"/v1/jobs/{point['job_id']}/report")
        misses = check_budgets(report, **budgets)
        click.echo(
            f"  point {point.get('label')}: accuracy {point.get('accuracy')}: "
            f"{'meets the budgets' if not misses else f'{len(misses)} budget(s) missed'}",
            err=True,
        )
        if not misses:
            api.download(f"/v1/jobs/{point['job_id']}/model.tflite", out)
            click.echo(f"picked {point['job_id']} (target {point.get('label')}) from sweep {sweep['id']}", err=True)
            return job, report, []
        first = first or (job, report, misses)
    if first is None:
        raise JobFailed(f"sweep {sweep['id']} has no succeeded point")
    return first


def _interrupted(api: Api, job_id: str) -> NoReturn:
    if sys.stdin.isatty():
        try:
            cancel = click.confirm(f"Cancel job {job_id}?", default=False, err=True)
        except click.Abort:
            cancel = False
        if cancel:
            job = api.post_json(f"/v1/jobs/{job_id}/cancel")
            click.echo(f"cancel requested: {job_id} is {job['status']}", err=True)
        else:
            click.echo(f"job {job_id} keeps running; follow it with `shears remote status {job_id}`", err=True)
    else:
        click.echo(
            f"interrupted: job {job_id} was NOT cancelled (no terminal to ask) and keeps running; "
            f"cancel it with `shears remote cancel {job_id}`",
            err=True,
        )
    sys.exit(EXIT_INTERRUPTED)


def _wait(api: Api, job_id: str, timeout_s: float, interval_s: float) -> dict[str, Any]:
    progress = Progress(sys.stderr, sys.stderr.isatty())
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            job = api.get_json(f"/v1/jobs/{job_id}")
            progress.update(job)
            if job["status"] in TERMINAL:
                return job
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimedOut(
                    f"timed out after {timeout_s:g} s; job {job_id} is still {job['status']} and keeps running "
                    f"(cancel it with `shears remote cancel {job_id}`)"
                )
            time.sleep(min(interval_s, left))
    except KeyboardInterrupt:
        progress.end()
        _interrupted(api, job_id)
    finally:
        progress.end()


@remote.command()
@click.option("--model", "model", help="A model id, or a local .keras/.h5 file (uploaded first).")
@click.option("--data", "data", help="A dataset id, builtin:digits / builtin:har, or a local .npz (uploaded first).")
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A job spec JSON file; the flags below override its fields.",
)
@click.option("--method", type=click.Choice(["magnitude", "gradient", "activation"]))
@click.option("--granularity", type=click.Choice(["unstructured", "n_of_m", "channel"]))
@click.option("--sparsity", type=float, help="Target: fraction of weights (or channels) to remove.")
@click.option("--macs-reduction", type=float, help="Target (channel granularity): fraction of MACs to remove.")
@click.option("--schedule", type=click.Choice(["one_shot", "polynomial"]))
@click.option("--steps", type=int, help="Rounds of prune -> fine-tune.")
@click.option("--epochs", type=int, help="Total fine-tuning epochs.")
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option(
    "--max-accuracy-drop",
    type=float,
    help="Sent as the job's guard, and checked as a budget with --wait "
    "(for a regression dataset it is sent as max_error_increase).",
)
@click.option("--quantization", type=click.Choice(["none", "float16", "dynamic_int8", "int8"]))
@click.option("--device", "devices", multiple=True, help="Device to profile on (repeatable); see `devices`.")
@click.option("--seed", type=int)
@click.option("--wait", is_flag=True, help="Follow the job, download its results and check the budgets.")
@click.option(
    "--timeout", "timeout_s", type=Duration(), default="2h", show_default=True, help="With --wait: 90s, 30m, 1h."
)
@click.option("--poll-interval", type=float, default=1.0, show_default=True, help="With --wait: seconds between polls.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="With --wait [./<job>.tflite].")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="With --wait.")
@click.option("--max-latency-ms", type=float, help="Budget: latency on each --device (default host).")
@click.option("--max-size-kb", type=float, help="Budget: size of the .tflite in KB (1 KB = 1024 bytes).")
@pass_settings
def submit(
    settings: Settings,
    /,
    model: str | None,
    data: str | None,
    spec_file: Path | None,
    wait: bool,
    timeout_s: float,
    poll_interval: float,
    out: Path | None,
    report_path: Path | None,
    max_latency_ms: float | None,
    max_size_kb: float | None,
    **flags: Any,
) -> None:
    """Submit a pruning job; prints its id, or with --wait follows it to the end.

    \b
    shears remote submit --model model.keras --data builtin:digits --sparsity 0.5 \\
        --wait --timeout 30m --max-size-kb 64 --max-accuracy-drop 0.01 \\
        --max-latency-ms 20 --device host -o pruned.tflite --report report.json
    """
    if not wait:
        given = [n for n, v in (("-o", out), ("--report", report_path)) if v is not None]
        given += [n for n, v in (("--max-latency-ms", max_latency_ms), ("--max-size-kb", max_size_kb)) if v is not None]
        if given:
            raise UsageError(f"{', '.join(given)} need --wait")
    base: dict[str, Any] = {}
    if spec_file is not None:
        try:
            loaded = json.loads(spec_file.read_text())
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read {spec_file}: {exc}", param_hint="--spec") from exc
        if not isinstance(loaded, dict):
            raise click.BadParameter("the spec file must hold a JSON object", param_hint="--spec")
        base = loaded
    if model is None and "model_id" not in base:
        raise UsageError("give --model (an id or a local file), or a model_id in --spec")
    if data is None and "dataset_id" not in base:
        raise UsageError("give --data (an id, builtin:..., or a local .npz), or a dataset_id in --spec")

    api = settings.client()
    spec = build_spec(base, flags)
    if model is not None:
        spec["model_id"] = _resolve_model(api, model)
    dataset: dict[str, Any] | None = None
    if data is not None:
        spec["dataset_id"], dataset = _resolve_data(api, data)
    dataset_id = str(spec.get("dataset_id", ""))
    if flags.get("max_accuracy_drop") is not None and not dataset_id.startswith("builtin:"):
        dataset = dataset or api.get_json(f"/v1/datasets/{dataset_id}")
        if dataset.get("task") == "regression":  # the guard of a regression job is in the target's units
            spec["max_error_increase"] = spec.pop("max_accuracy_drop")

    job = api.post_json("/v1/jobs", spec)
    job_id = str(job["id"])
    if not wait:
        click.echo(job_id)
        return
    click.echo(f"submitted {job_id}", err=True)
    job = _wait(api, job_id, timeout_s, poll_interval)
    if job["status"] == "failed":
        error = job.get("error") or {}
        raise JobFailed(f"job {job_id} failed: {error.get('code', 'unknown')}: {error.get('message', '')}")
    if job["status"] == "cancelled":
        raise JobCancelled(f"job {job_id} was cancelled")

    out = _out_path(out, job_id)
    budgets: dict[str, Any] = {
        "max_latency_ms": max_latency_ms,
        "devices": tuple(spec.get("devices") or ("host",)),
        "max_size_kb": max_size_kb,
        "max_accuracy_drop": flags.get("max_accuracy_drop"),
    }
    if job.get("kind") == "sweep":
        job, report, misses = _pick_from_sweep(api, job, out, report_path, budgets)
        if not misses:
            click.echo(summary(job, report, out, report_path))
    else:
        report = _fetch_results(api, job_id, out, report_path)
        click.echo(summary(job, report, out, report_path))
        misses = check_budgets(report, **budgets)
    if misses:
        click.echo(f"budget missed ({len(misses)}):", err=True)
        for miss in misses:
            click.echo(f"  - {miss}", err=True)
        sys.exit(EXIT_BUDGET)


@remote.command()
@click.argument("job_id", metavar="JOB")
@pass_settings
def status(settings: Settings, job_id: str) -> None:
    """Print JOB's record (status, stage, progress, error, result)."""
    _print_json(settings.client().get_json(f"/v1/jobs/{job_id}"))


@remote.command()
@click.argument("job_id", metavar="JOB")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="[./<job>.tflite]")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path))
@pass_settings
def download(settings: Settings, job_id: str, out: Path | None, report_path: Path | None) -> None:
    """Download a finished JOB's model.tflite (and its report)."""
    api = settings.client()
    out = _out_path(out, job_id)
    size = api.download(f"/v1/jobs/{job_id}/model.tflite", out)
    click.echo(f"{out} ({size} bytes)")
    if report_path is not None:
        api.download(f"/v1/jobs/{job_id}/report", report_path)
        click.echo(f"{report_path}")


@remote.command()
@click.argument("job_id", metavar="JOB")
@pass_settings
def cancel(settings: Settings, job_id: str) -> None:
    """Cancel JOB: a queued job never starts, a running one stops at its next step."""
    job = settings.client().post_json(f"/v1/jobs/{job_id}/cancel")
    click.echo(f"{job_id} {job['status']}" + (" (cancel requested)" if job["status"] == "running" else ""))


@remote.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON.")
@pass_settings
def devices(settings: Settings, as_json: bool) -> None:
    """List the device profiles the server knows."""
    items = settings.client().get_json("/v1/devices").get("items", [])
    if as_json:
        _print_json(items)
        return
    for device in items:
        click.echo(f"{device.get('name', '?'):<24} {device.get('kind', ''):<10} {device.get('runtime', '')}")


@remote.command("webhook-secret")
@click.option("--rotate", is_flag=True, help="Draw a new secret (the old one stops signing).")
@pass_settings
def webhook_secret(settings: Settings, rotate: bool) -> None:
    """Print the secret that signs this tenant's webhook deliveries (Shears-Signature)."""
    api = settings.client()
    answer = api.post_json("/v1/webhook-secret") if rotate else api.get_json("/v1/webhook-secret")
    click.echo(answer["secret"])


# Housekeeping ----------------------------------------------------------------------------


def _delete(settings: Settings, what: str, path: str, row_id: str) -> None:
    response = settings.client().request("DELETE", path)
    if response.status_code == 202:
        click.echo(f"{row_id} cancelling; deleted once it has stopped")
    else:
        click.echo(f"{row_id} deleted ({what} and its files)")


@remote.group()
def models() -> None:
    """Uploaded models."""


@models.command("delete")
@click.argument("model_ids", metavar="MODEL...", nargs=-1, required=True)
@pass_settings
def models_delete(settings: Settings, model_ids: tuple[str, ...]) -> None:
    """Delete models and their files (refused while a queued or running job uses one)."""
    for model_id in model_ids:
        _delete(settings, "model", f"/v1/models/{model_id}", model_id)


@datasets.command("delete")
@click.argument("dataset_ids", metavar="DATASET...", nargs=-1, required=True)
@pass_settings
def datasets_delete(settings: Settings, dataset_ids: tuple[str, ...]) -> None:
    """Delete datasets and their files (refused while a queued or running job uses one)."""
    for dataset_id in dataset_ids:
        _delete(settings, "dataset", f"/v1/datasets/{dataset_id}", dataset_id)


@remote.group()
def jobs() -> None:
    """Jobs."""


@jobs.command("delete")
@click.argument("job_ids", metavar="JOB...", nargs=-1, required=True)
@pass_settings
def jobs_delete(settings: Settings, job_ids: tuple[str, ...]) -> None:
    """Delete jobs and every file they produced; a queued or running job is cancelled first."""
    for job_id in job_ids:
        _delete(settings, "job", f"/v1/jobs/{job_id}", job_id)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover


@remote.command()
@click.option("--json", "as_json", is_flag=True, help="Print the server's JSON.")
@pass_settings
def usage(settings: Settings, as_json: bool) -> None:
    """What your tenant stores and runs, against its limits."""
    data = settings.client().get_json("/v1/usage")
    if as_json:
        _print_json(data)
        return
    limits = data["limits"]
    retention = f"{limits['retention_days']:g} days" if limits.get("retention_days") else "off"
    click.echo(f"uploads   {_size(data['upload_bytes'])} of {_size(limits['upload_bytes'])}")
    click.echo(f"results   {_size(data['job_bytes'])}")
    click.echo(f"models    {data['models']}   datasets {data['datasets']}   jobs {data['jobs']}")
    click.echo(f"queued    {data['jobs_queued']} of {limits['queued_jobs']}")
    click.echo(f"running   {data['jobs_running']} of {limits['running_jobs']}")
    click.echo(f"retention {retention}")
