"""The `shears` command: server side (serve, worker, db, keys) and local engine use (prune, examples)."""

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from contract.spec import DEFAULT_SPARSITY, Finetune, JobSpec, NofM, Schedule, default
from shears.flags import spec_flag
from shears_client.commands import remote


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to fd 1 (TensorFlow prints while it converts) to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@click.group()
def main() -> None:
    """Shears: pruning as a service for on-device AI."""


def _die_with_parent() -> None:
    """In the embedded worker's process: get SIGTERM (a warm shutdown) if `shears serve` dies."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _sandbox_at_start(role: str) -> None:
    """Non-dumpable; probe the sandbox and say the level; a worker also runs the fast attack check
    and, under SHEARS_SANDBOX=strict, refuses to start (so to take jobs) when it fails."""
    from contract import jail

    jail.make_undumpable()
    found = jail.probe()
    click.echo(
        f"shears {role}: sandbox level {found.level} (SHEARS_SANDBOX requires {jail.required_level()}): "
        f"user namespaces {found.user_namespaces}, Landlock ABI {found.landlock_abi}, seccomp {found.seccomp}"
        + (f"; {'; '.join(found.notes)}" if found.notes else ""),
        err=True,
    )
    if role != "worker":
        return
    from workers import sandbox_check

    _, attempts = sandbox_check.run(fast=True)
    if not sandbox_check.passed(attempts):
        failed = "; ".join(f"{a.name}: {a.detail}" for a in attempts if not a.blocked)
        click.echo(f"shears worker: the sandbox check failed: {failed}", err=True)
        if jail.required_level() == "namespaces":
            click.echo("shears worker: SHEARS_SANDBOX=strict: refusing to run jobs", err=True)
            sys.exit(78)


@main.command("sandbox-check")
@click.option(
    "--payload", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A Python file to run too."
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--fast", is_flag=True, help="Only the quick attempts (what a worker runs at start).")
def sandbox_check_command(payload: Path | None, as_json: bool, fast: bool) -> None:
    """Run the built-in attacks (and PAYLOAD) in exactly the confinement a job's engine gets.

    Exit 0 only when every built-in attack fails."""
    from workers import sandbox_check

    found, attempts = sandbox_check.run(payload=payload, fast=fast)
    click.echo(sandbox_check.report(found, attempts, as_json))
    sys.exit(0 if sandbox_check.passed(attempts) else 1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--no-worker", is_flag=True, help="Run only the API (workers run elsewhere).")
def serve(host: str, port: int, no_worker: bool) -> None:
    """Run the API, and a Celery worker process beside it."""
    import uvicorn

    from app.migrate import ensure_embedded_schema
    from app.settings import get_settings
    from shears.supervise import Supervisor

    _sandbox_at_start("serve")
    ensure_embedded_schema()
    worker = None
    if not no_worker:
        # Watched: reaped and restarted (with backoff) if it dies, e.g. at the OOM killer's hand.
        worker = Supervisor(
            lambda: subprocess.Popen([sys.executable, "-m", "shears.cli", "worker"], preexec_fn=_die_with_parent)
        )
    # uvicorn shuts down on SIGTERM, then raises the signal again: make that an exit that runs
    # the `finally` below (which stops the worker) instead of killing this process on the spot.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        uvicorn.run("app.api.main:app", host=host, port=port, log_level=get_settings().log_level, access_log=False)
    finally:
        if worker is not None:
            worker.stop(timeout=30)


@main.command()
@click.option("--concurrency", type=int, default=None, help="Jobs run at once (default SHEARS_WORKER_CONCURRENCY).")
@click.option("--loglevel", default=None, help="Log level (default SHEARS_LOG_LEVEL).")
@click.option(
    "--queues",
    "-Q",
    default=None,
    help="Comma-separated queues to serve, e.g. `cpu` or `gpu` (default SHEARS_WORKER_QUEUES, else all).",
)
def worker(concurrency: int | None, loglevel: str | None, queues: str | None) -> None:
    """Run one Celery worker.

    A worker serving a GPU queue (SHEARS_GPU_QUEUES) runs one job at a time and lets TensorFlow
    grow GPU memory as needed; one serving none hides the GPU from its engine processes.
    """
    from app.settings import get_settings

    _sandbox_at_start("worker")
    if queues is not None:
        os.environ["SHEARS_WORKER_QUEUES"] = queues
        get_settings.cache_clear()
    settings = get_settings()
    serving = settings.served_queues
    if set(serving) & settings.gpu_queue_names:
        concurrency = 1
        os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] = "true"
    else:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    from workers.celery_app import celery_app

    celery_app.worker_main(
        [
            "worker",
            f"--loglevel={loglevel or settings.log_level}",
            f"--concurrency={concurrency or settings.worker_concurrency}",
            f"--queues={','.join(serving)}",
            "--pool=prefork",
            "--without-gossip",
            "--without-mingle",
        ]
    )


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply all migrations (alembic upgrade head)."""
    from app.migrate import upgrade

    upgrade()


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--tenant", required=True, help="Tenant name; created if new.")
def keys_create(tenant: str) -> None:
    """Print a new API key for TENANT. It is shown once and only its hash is stored."""
    from app.auth.service import create_key
    from app.db import session_scope
    from app.migrate import ensure_embedded_schema

    ensure_embedded_schema()
    with session_scope() as session:
        key = create_key(session, tenant)
    click.echo(key)


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke KEY: the whole key, or its id (key_...). Never a prefix (it may be shared)."""
    from app.auth.service import revoke_key
    from app.db import session_scope

    with session_scope() as session:
        try:
            count = revoke_key(session, key)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
    click.echo(f"revoked {count} key(s)")
    if not count:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the full profiles as JSON.")
def devices(as_json: bool) -> None:
    """The device profiles: clock, RAM, flash, runtime, and the source of each number."""
    from contract.devices import load_profiles

    profiles = load_profiles()
    if as_json:
        click.echo(json.dumps([p.to_dict() for p in profiles.values()], indent=2))
        return
    click.echo(f"{'device':<26} {'kind':<6} {'clock':>7} {'RAM':>10} {'flash':>10} {'thr':>3}  runtime")
    for p in profiles.values():
        click.echo(
            f"{p.name:<26} {p.kind:<6} {p.clock_mhz:>5.0f}MHz {_kib(p.ram_bytes):>10} {_kib(p.flash_bytes):>10} "
            f"{p.threads:>3}  {p.runtime}"
        )


def _kib(n: int) -> str:
    return f"{n / 1024:.0f} KiB" if n < 1 << 30 else f"{n / 1024**3:.0f} GiB"


@main.command("profile")
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--device", "devices", multiple=True, help="A device profile (repeatable); default: all.")
@spec_flag("--quantization", JobSpec, "quantization", show_default=False)
@click.option("--data", default=None, help="Data to calibrate an int8 export on (.npz or builtin:...).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-calibrate", is_flag=True, help="Do not calibrate this CPU's host tables if it has none.")
def profile_command(
    model: Path, devices: tuple[str, ...], quantization: str, data: str | None, as_json: bool, no_calibrate: bool
) -> None:
    """Latency, RAM and flash of MODEL (.keras, .h5 or .tflite) per device, plus a host measurement.

    On a CPU without its own host tables, they are calibrated first (once, at most ~3 minutes; cached
    per CPU fingerprint) unless --no-calibrate or SHEARS_HOST_CALIBRATION=off."""
    import tempfile

    from contract.devices import device_names
    from contract.errors import PruningError
    from pruning.datasets import load_builtin, load_npz
    from pruning.run import profile
    from pruning.spec import PruneSpec

    names = list(devices) or device_names()
    try:
        dataset = (
            None if data is None else (load_builtin(data) if data.startswith("builtin:") else load_npz(Path(data)))
        )
        # TensorFlow prints while it converts; stdout is kept for the answer.
        with tempfile.TemporaryDirectory(prefix="shears-profile-") as tmp, _stdout_to_stderr():
            if "host" in names and not no_calibrate:
                from pruning.estimate.host_setup import ensure_host_tables

                ensure_host_tables(log=lambda m: click.echo(m, err=True))
            report = profile(
                model, PruneSpec(quantization=quantization, devices=tuple(names)), Path(tmp), dataset
            ).report
    except PruningError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    click.echo(f"{model}: {report['size']['tflite_bytes']} bytes .tflite ({quantization})")
    click.echo(
        f"{'device':<26} {'estimate ms':>12} {'band ms':>17} {'measured':>9} {'energy mJ':>10} {'band mJ':>17} "
        f"{'inf/mAh':>10} {'RAM':>10} {'flash':>10} fits"
    )
    for e in report["latency"]:
        measured = f"{e['measured_ms']:.3f}" if e.get("measured_ms") is not None else "-"
        band = f"{e['low_ms']:.3f}..{e['high_ms']:.3f}"
        energy, ebands, per_mah = "-", "-", "-"
        if e.get("energy_mj") is not None:
            energy, ebands = f"{e['energy_mj']:.4g}", f"{e['energy_low_mj']:.3g}..{e['energy_high_mj']:.3g}"
        if e.get("inferences_per_mah") is not None:
            per_mah = f"{e['inferences_per_mah']:.0f}"
        click.echo(
            f"{e['device']:<26} {e['estimate_ms']:>12.3f} {band:>17} {measured:>9} {energy:>10} {ebands:>17} "
            f"{per_mah:>10} {_kib(e['ram_bytes']):>10} {_kib(e['flash_bytes']):>10} {'yes' if e['fits'] else 'NO'}"
        )
    host = next((e for e in report["latency"] if e["device"] == "host"), None)
    if host is not None and "ANOTHER CPU" in host.get("basis", ""):
        click.echo("note: host estimate made with tables from another CPU (see basis); calibrate-host to fix", err=True)


@main.command()
@click.argument("name", type=click.Choice(["digits-cnn", "har-cnn"]))
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def examples(name: str, out: Path) -> None:
    """Train a small example model on built-in data and save it (seconds, no download)."""
    from pruning.examples import save_example

    save_example(name, out)
    click.echo(f"saved {out}")


@main.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--data", required=True, help="An .npz file, or builtin:digits / builtin:har.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path))
@spec_flag("--method", JobSpec, "method")
@spec_flag("--granularity", JobSpec, "granularity")
@click.option(
    "--sparsity", type=float, default=None, help=f"Fraction of weights (or channels) to remove [{DEFAULT_SPARSITY}]."
)
@click.option("--macs-reduction", type=float, default=None, help="Channel granularity: fraction of MACs to remove.")
@click.option(
    "--latency-ms",
    type=float,
    default=None,
    help="Channel granularity: prune until the estimated latency on --device is at most this (NetAdapt-style search).",
)
@click.option("--device", default=None, help="The device profile of --latency-ms (see `shears devices`).")
@spec_flag("--scope", JobSpec, "scope", default=None, show_default=False, help="Unstructured [global].")
@spec_flag("--block", JobSpec, "block", type=int, help="Unstructured: drop weights in runs of this many inputs.")
@click.option("--n", "n", type=int, default=default(NofM, "n"), show_default=True, help="N of N:M.")
@click.option("--m", "m", type=int, default=default(NofM, "m"), show_default=True, help="M of N:M.")
@spec_flag("--schedule", Schedule, "kind", default=None, show_default=False, help="[polynomial if unstructured].")
@click.option("--steps", type=int, default=None)
@click.option("--epochs", type=int, default=None, help="Fine-tuning epochs [chosen from the data and the cut].")
@click.option("--batch-size", type=int, default=default(Finetune, "batch_size"), show_default=True)
@click.option(
    "--learning-rate", type=float, default=None, help="[the model's own optimizer's rate, else a range test]."
)
@click.option("--distill/--no-distill", default=None, help="Learn from the dense model too [off].")
@click.option("--control", is_flag=True, help="Channel: also train the thinned model from scratch and compare.")
@click.option("--max-accuracy-drop", type=float, default=None)
@spec_flag("--quantization", JobSpec, "quantization", show_default=False)
@spec_flag("--quantization-aware", JobSpec, "quantization_aware")
@click.option("--seed", type=int, default=default(JobSpec, "seed"), show_default=True)
def prune(model: Path, data: str, out: Path, report: Path | None, **options: Any) -> None:
    """Prune MODEL locally with the same engine the workers run."""
    import shutil
    import tempfile

    from contract.errors import PruningError
    from pruning.datasets import load_builtin, load_npz
    from pruning.run import run
    from pruning.spec import PruneSpec

    steps = options.pop("steps")
    if options["sparsity"] is None and options["macs_reduction"] is None and options["latency_ms"] is None:
        options["sparsity"] = DEFAULT_SPARSITY
    try:
        spec = PruneSpec(**options, steps=steps)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        dataset = load_builtin(data, seed=spec.seed) if data.startswith("builtin:") else load_npz(Path(data))
        with tempfile.TemporaryDirectory(prefix="shears-prune-") as tmp, _stdout_to_stderr():
            result = run(
                model, dataset, spec, Path(tmp), lambda stage, f: click.echo(f"{stage:<11} {f:6.1%}", err=True)
            )
            shutil.copyfile(result.tflite_path, out)
    except PruningError as exc:
        raise click.ClickException(f"{exc.code}: {exc.message}") from exc
    if report:
        report.write_text(json.dumps(result.report, indent=2))
    acc, sparsity, size = (result.report[k] for k in ("accuracy", "sparsity", "size"))
    click.echo(
        f"{out}: {acc['metric']} {acc['before']:.4f} -> {acc['after']:.4f}, "
        f"sparsity {sparsity['overall']:.3f}, {size['tflite_gzip_bytes']} bytes gzipped"
    )
    chosen = result.report.get("finetune") or {}
    if chosen:
        click.echo(
            f"fine-tuning: {chosen['epochs']} epochs, batch {chosen['batch_size']}, {chosen['optimizer']} "
            f"{chosen['learning_rate']:.2g} ({chosen['schedule']}); "
            + "; ".join(f"{k}: {v}" for k, v in chosen["why"].items())
        )
    if "latency_search" in result.report:
        found = result.report["latency_search"]
        click.echo(
            f"{found['device']}: estimated {found['dense_estimate_ms']:.4f} -> {found['reached_estimate_ms']:.4f} ms, "
            f"budget {found['budget_ms']:g} ms {'met' if found['met'] else 'NOT met'}: {found['note']}"
        )


main.add_command(remote)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
