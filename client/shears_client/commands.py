"""`shears remote` (also `shears-remote`): the build-pipeline client of a Shears server (httpx + click only).

The group, its error handling (one line with the cause and the fix; the traceback only with --debug)
and the small commands; `submit` is in shears_client.submit.
"""

from __future__ import annotations

import json
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from shears_client.errors import (
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_JOB_CANCELLED,
    EXIT_JOB_FAILED,
    EXIT_OK,
    EXIT_REQUEST,
    EXIT_TIMEOUT,
    EXIT_UNREACHABLE,
    ShearsError,
)
from shears_client.http import Api

HELP = f"""Drive a Shears server from a build pipeline.

Reads SHEARS_URL and SHEARS_API_KEY from the environment (--url and --api-key override them).
Network errors and 502/503/504 answers are retried with exponential backoff (Retry-After is
respected); every POST carries an Idempotency-Key so a retried request is the same request.
An error is one line, `Error: <cause> -> <fix>`; --debug (or SHEARS_DEBUG=1) adds the traceback.

\b
Exit codes:
  {EXIT_OK}    success (and, with --wait, every budget met)
  {EXIT_REQUEST}    usage error, or the server refused the request (4xx: bad input, wrong or expired
       key (401), file over the upload limit (413), quota reached (429), client too old (426))
  {EXIT_JOB_FAILED}    the job failed (its error code and message are printed)
  {EXIT_JOB_CANCELLED}    the job was cancelled
  {EXIT_TIMEOUT}    --timeout passed before the job finished (the job keeps running)
  {EXIT_BUDGET}    the job succeeded but missed a budget (--max-latency-ms, --max-size-kb,
       --max-accuracy-drop); each miss is printed with the figure and the margin
  {EXIT_UNREACHABLE}    the server could not be reached (wrong SHEARS_URL, server down, cut mid-upload),
       or kept answering 5xx, after the retries
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C) while waiting
"""


class UsageError(click.UsageError):
    exit_code = EXIT_REQUEST


class RemoteGroup(click.Group):
    """Usage errors exit 1 here (not click's 2), so that 2 always means "the job failed"; a ShearsError
    is one line with its exit code; anything else is one line too, with the traceback under --debug."""

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
        except ShearsError as exc:
            if _debug(ctx):
                traceback.print_exc()
            click.echo(f"Error: {exc.one_line()}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug of the client: one line unless --debug
            if _debug(ctx):
                raise
            click.echo(
                f"Error: unexpected {type(exc).__name__}: {exc} -> a bug in shears remote: "
                "rerun with --debug and report the traceback",
                err=True,
            )
            ctx.exit(EXIT_REQUEST)


def _debug(ctx: click.Context) -> bool:
    settings = ctx.find_object(Settings)
    return bool(settings and settings.debug)


@dataclass
class Settings:
    url: str | None
    key: str | None
    debug: bool = False
    api: Api | None = None

    def client(self) -> Api:
        if self.api is None:
            if not self.url:
                raise UsageError("no server: set SHEARS_URL or pass --url")
            if not self.key:
                raise UsageError("no API key: set SHEARS_API_KEY or pass --api-key")
            self.api = Api(self.url, self.key)
        return self.api


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


def _print_record(record: dict[str, Any], quiet: bool) -> None:
    if quiet:
        click.echo(record["id"])
    else:
        print_json(record)


@click.group(cls=RemoteGroup, help=HELP)
@click.option("--url", envvar="SHEARS_URL", help="Server address, e.g. https://shears.example.com [SHEARS_URL].")
@click.option("--api-key", envvar="SHEARS_API_KEY", help="API key [SHEARS_API_KEY].")
@click.option("--debug", is_flag=True, envvar="SHEARS_DEBUG", help="Print the traceback of an error.")
@click.pass_context
def remote(ctx: click.Context, url: str | None, api_key: str | None, debug: bool) -> None:
    settings = Settings(url, api_key, debug)
    ctx.obj = settings

    def _close() -> None:
        if settings.api is not None:
            settings.api.close()

    ctx.call_on_close(_close)


pass_settings = click.make_pass_decorator(Settings)


def main() -> None:
    """The `shears-remote` console script."""
    remote(prog_name="shears-remote")


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

    from shears_client.upload import upload_resumable

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


def out_path(out: Path | None, job_id: str) -> Path:
    return out if out is not None else Path(f"{job_id}.tflite")


@remote.command()
@click.argument("job_id", metavar="JOB")
@pass_settings
def status(settings: Settings, job_id: str) -> None:
    """Print JOB's record (status, stage, progress, error, result)."""
    print_json(settings.client().get_json(f"/v1/jobs/{job_id}"))


@remote.command()
@click.argument("job_id", metavar="JOB")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), help="[./<job>.tflite]")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path))
@pass_settings
def download(settings: Settings, job_id: str, out: Path | None, report_path: Path | None) -> None:
    """Download a finished JOB's model.tflite (and its report)."""
    api = settings.client()
    out = out_path(out, job_id)
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
        print_json(items)
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
        print_json(data)
        return
    limits = data["limits"]
    retention = f"{limits['retention_days']:g} days" if limits.get("retention_days") else "off"
    click.echo(f"uploads   {_size(data['upload_bytes'])} of {_size(limits['upload_bytes'])}")
    click.echo(f"results   {_size(data['job_bytes'])}")
    click.echo(f"models    {data['models']}   datasets {data['datasets']}   jobs {data['jobs']}")
    click.echo(f"queued    {data['jobs_queued']} of {limits['queued_jobs']}")
    click.echo(f"running   {data['jobs_running']} of {limits['running_jobs']}")
    click.echo(f"retention {retention}")


from shears_client import submit as _submit  # noqa: E402,F401  (registers `submit` on the group)

__all__ = ["EXIT_BUDGET", "EXIT_JOB_CANCELLED", "EXIT_JOB_FAILED", "EXIT_TIMEOUT", "EXIT_UNREACHABLE", "remote"]
