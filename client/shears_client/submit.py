"""`shears remote submit`: every field of the job spec as a flag, `--wait` to follow the job, check its
budgets, print a one-screen summary and write it for CI (`--summary FILE.md`, `--junit FILE.xml`)."""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from shears_client.budgets import budget_checks, junit, markdown, summary
from shears_client.commands import Settings, UsageError, out_path, pass_settings, remote
from shears_client.errors import EXIT_BUDGET, EXIT_INTERRUPTED, JobCancelled, JobFailed, ShearsError, WaitTimeout
from shears_client.http import Api
from shears_client.sdk import Client, Job, looks_like_a_path

# Each field of the job spec (docs/openapi.json `JobSpec` and its parts) and the flag that sets it;
# tests/client checks this against the published schema, so a new field without a flag fails the build.
SPEC_FLAGS: dict[str, str] = {
    "model_id": "--model",
    "dataset_id": "--data",
    "kind": "--kind",
    "method": "--method",
    "granularity": "--granularity",
    "target.sparsity": "--sparsity",
    "target.macs_reduction": "--macs-reduction",
    "target.latency_ms": "--latency-ms",
    "target.device": "--target-device",
    "sweep.sparsities": "--sweep-sparsity",
    "sweep.latency_ms": "--sweep-latency-ms",
    "sweep.device": "--target-device",
    "sweep.budget_ms": "--sweep-budget-ms",
    "scope": "--scope",
    "block": "--block",
    "n_of_m.n": "--n-of-m",
    "n_of_m.m": "--n-of-m",
    "schedule.kind": "--schedule",
    "schedule.steps": "--steps",
    "finetune.epochs": "--epochs",
    "finetune.batch_size": "--batch-size",
    "finetune.learning_rate": "--learning-rate",
    "finetune.control": "--control",
    "finetune.distill": "--distill",
    "finetune.augment": "--augment",
    "max_accuracy_drop": "--max-accuracy-drop",
    "max_error_increase": "--max-error-increase",
    "quantization": "--quantization",
    "quantization_aware": "--quantization-aware",
    "devices": "--device",
    "seed": "--seed",
    "callback_url": "--callback-url",
}


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


def _section(spec: dict[str, Any], name: str) -> dict[str, Any]:
    section = spec.setdefault(name, {})
    if not isinstance(section, dict):
        raise click.BadParameter(f"{name} must be an object in the spec file", param_hint="--spec")
    return section


def _n_of_m(text: str) -> dict[str, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[:/]\s*(\d+)\s*", text)
    if not match:
        raise click.BadParameter(f"{text!r} is not N:M, e.g. 2:4", param_hint="--n-of-m")
    return {"n": int(match.group(1)), "m": int(match.group(2))}


def build_spec(base: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """The spec file's fields, with every flag that was given written over them."""
    spec = copy.deepcopy(base)
    given = {k: v for k, v in flags.items() if v is not None and v != ()}
    for name in ("kind", "method", "granularity", "scope", "block", "quantization", "quantization_aware", "seed",
                 "callback_url"):  # fmt: skip
        if name in given:
            spec[name] = given[name]
    for name in ("max_accuracy_drop", "max_error_increase"):
        if name in given:
            spec[name] = given[name]
    target: dict[str, Any] = {k: given[k] for k in ("sparsity", "macs_reduction", "latency_ms") if k in given}
    if "latency_ms" in target:
        device = given.get("target_device") or (given.get("devices") or (None,))[0]
        if device is not None:
            target["device"] = device
    if target:
        spec["target"] = target  # a target is one of several kinds: a flag replaces the file's
    sweep = {"sparsities": "sweep_sparsity", "latency_ms": "sweep_latency_ms", "budget_ms": "sweep_budget_ms"}
    chosen = {key: list(given[flag]) if isinstance(given[flag], tuple) else given[flag]
              for key, flag in sweep.items() if flag in given}  # fmt: skip
    if chosen:
        if "latency_ms" in chosen and given.get("target_device"):
            chosen["device"] = given["target_device"]
        _section(spec, "sweep").update(chosen)
        spec.setdefault("kind", "sweep")
    if "n_of_m" in given:
        spec["n_of_m"] = _n_of_m(given["n_of_m"])
    if "augment" in given:
        try:
            given["augment"] = json.loads(given["augment"])
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--augment") from exc
    sections = {
        "schedule": {"schedule": "kind", "steps": "steps"},
        "finetune": {
            "epochs": "epochs", "batch_size": "batch_size", "learning_rate": "learning_rate",
            "control": "control", "distill": "distill", "augment": "augment",
        },
    }  # fmt: skip
    for section, names in sections.items():
        values = {key: given[flag] for flag, key in names.items() if flag in given}
        if values:
            _section(spec, section).update(values)
    if given.get("devices"):
        spec["devices"] = list(given["devices"])
    return spec


def _resolve(client: Client, value: str, kind: str) -> tuple[str, dict[str, Any] | None]:
    """The id for --model/--data, uploading a local file first (its record returned too)."""
    if kind == "data" and value.startswith("builtin:"):
        return value, None
    path = Path(value)
    if path.is_file():
        upload = (client.upload_model if kind == "model" else client.upload_dataset)(path)
        click.echo(f"uploaded {path} as {upload.id}", err=True)
        return upload.id, upload.data
    if looks_like_a_path(value):
        raise click.BadParameter(f"no such file: {value}", param_hint=f"--{kind}")
    return value, None


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
    from shears_client.budgets import check_budgets

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


class Outputs:
    """The CI files asked for (`--summary` appended, as $GITHUB_STEP_SUMMARY wants; `--junit` written)."""

    def __init__(self, summary_md: Path | None, junit_xml: Path | None, budgets: dict[str, Any]) -> None:
        self.summary_md, self.junit_xml, self.budgets = summary_md, junit_xml, budgets

    def write(self, job_id: str, status: str, report: dict[str, Any] | None, error: str = "") -> None:
        checks = budget_checks(report, **self.budgets) if report is not None else []
        misses = [m for _, m in checks if m]
        if self.summary_md is not None:
            with self.summary_md.open("a", encoding="utf-8") as f:
                f.write(markdown(job_id, status, report, misses, error))
        if self.junit_xml is not None:
            self.junit_xml.parent.mkdir(parents=True, exist_ok=True)
            self.junit_xml.write_text(junit(job_id, status, checks, error), encoding="utf-8")


P = click.Path(dir_okay=False, path_type=Path)


@remote.command()
@click.option("--model", "model", help="A model id, or a local .keras/.h5/.tflite file (uploaded first).")
@click.option("--data", "data", help="A dataset id, builtin:digits / builtin:har, or a local file (uploaded first).")
@click.option(
    "--spec",
    "spec_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A job spec JSON file; the flags below override its fields.",
)
@click.option("--kind", type=click.Choice(["prune", "profile", "sweep"]), help="[prune]")
@click.option("--method", type=click.Choice(["magnitude", "gradient", "activation"]))
@click.option("--granularity", type=click.Choice(["unstructured", "n_of_m", "channel"]))
@click.option("--sparsity", type=float, help="Target: fraction of weights (or channels) to remove.")
@click.option("--macs-reduction", type=float, help="Target (channel granularity): fraction of MACs to remove.")
@click.option("--latency-ms", type=float, help="Target: latency on --target-device (the server searches the cut).")
@click.option("--target-device", help="The device of --latency-ms / --sweep-latency-ms [the first --device].")
@click.option("--sweep-sparsity", type=float, multiple=True, help="A sweep point (repeatable; implies --kind sweep).")
@click.option("--sweep-latency-ms", type=float, multiple=True, help="A sweep latency point (repeatable).")
@click.option("--sweep-budget-ms", type=float, help="Sweep: the latency budget its Pareto pick must meet.")
@click.option(
    "--scope", type=click.Choice(["per_layer", "global"]), help="Unstructured: one threshold per layer or one."
)
@click.option("--block", type=int, help="Unstructured: keep or drop weights in runs of this many inputs (1-16).")
@click.option("--n-of-m", "n_of_m", help="n_of_m granularity: keep N of every M weights, e.g. 2:4.")
@click.option("--schedule", type=click.Choice(["one_shot", "polynomial"]))
@click.option("--steps", type=int, help="Rounds of prune -> fine-tune.")
@click.option("--epochs", type=int, help="Total fine-tuning epochs.")
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--control/--no-control", default=None, help="Also train the same thin net from scratch (control).")
@click.option("--distill/--no-distill", default=None, help="Fine-tune against the dense model's outputs too.")
@click.option("--augment", help="Fine-tuning augmentation as JSON, e.g. '{\"flip\": true}'.")
@click.option(
    "--max-accuracy-drop",
    type=float,
    help="Sent as the job's guard, and checked as a budget with --wait "
    "(for a regression dataset it is sent as max_error_increase).",
)
@click.option("--max-error-increase", type=float, help="The guard of a regression job, in the target's units.")
@click.option("--quantization", type=click.Choice(["none", "float16", "dynamic_int8", "int8"]))
@click.option(
    "--quantization-aware",
    type=click.Choice(["auto", "always", "never"]),
    help="int8: fine-tune with fake quantization, keeping the masks [auto: when post-training int8 breaks the guard].",
)
@click.option("--device", "devices", multiple=True, help="Device to profile on (repeatable); see `devices`.")
@click.option("--seed", type=int)
@click.option("--callback-url", help="POSTed the job (signed, Shears-Signature) when it ends.")
@click.option(
    "--idempotency-key",
    help="Submit under this key: sent again with the same key and spec (a re-run pipeline step), the server "
    "returns the job the first submit made instead of running another; the same key with another spec is an error.",
)
@click.option("--wait", is_flag=True, help="Follow the job, download its results and check the budgets.")
@click.option(
    "--timeout", "timeout_s", type=Duration(), default="2h", show_default=True, help="With --wait: 90s, 30m, 1h."
)
@click.option("--poll-interval", type=float, default=1.0, show_default=True, help="With --wait: seconds between polls.")
@click.option("-o", "--out", type=P, help="With --wait [./<job>.tflite].")
@click.option("--report", "report_path", type=P, help="With --wait.")
@click.option("--max-latency-ms", type=float, help="Budget: latency on each --device (default host).")
@click.option("--max-size-kb", type=float, help="Budget: size of the .tflite in KB (1 KB = 1024 bytes).")
@click.option(
    "--summary", "summary_md", type=P, help="With --wait: append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)."
)
@click.option(
    "--junit", "junit_xml", type=P, help="With --wait: write JUnit XML (the job and each budget a test case)."
)
@pass_settings
def submit(
    settings: Settings, /, model: str | None, data: str | None, spec_file: Path | None, wait: bool, timeout_s: float,
    poll_interval: float, out: Path | None, report_path: Path | None, max_latency_ms: float | None,
    max_size_kb: float | None, summary_md: Path | None, junit_xml: Path | None, idempotency_key: str | None,
    **flags: Any,
) -> None:  # fmt: skip
    """Submit a job; prints its id, or with --wait follows it to the end.

    \b
    shears remote submit --model model.keras --data builtin:digits --sparsity 0.5 \\
        --wait --timeout 30m --max-size-kb 64 --max-accuracy-drop 0.01 \\
        --max-latency-ms 20 --device host -o pruned.tflite --report report.json --summary summary.md
    """
    if not wait:
        named = {"-o": out, "--report": report_path, "--max-latency-ms": max_latency_ms, "--max-size-kb": max_size_kb,
                 "--summary": summary_md, "--junit": junit_xml}  # fmt: skip
        given = [n for n, v in named.items() if v is not None]
        if given:
            raise UsageError(f"{', '.join(given)} need --wait")
    base: dict[str, Any] = {}
    if spec_file is not None:
        try:
            base = json.loads(spec_file.read_text())
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"cannot read {spec_file}: {exc}", param_hint="--spec") from exc
        if not isinstance(base, dict):
            raise click.BadParameter("the spec file must hold a JSON object", param_hint="--spec")
    if model is None and "model_id" not in base:
        raise UsageError("give --model (an id or a local file), or a model_id in --spec")
    if data is None and "dataset_id" not in base and (flags.get("kind") or base.get("kind")) != "profile":
        raise UsageError("give --data (an id, builtin:..., or a local dataset file), or a dataset_id in --spec")

    api = settings.client()
    client = Client.of(api)
    spec = build_spec(base, flags)
    if model is not None:
        spec["model_id"], _ = _resolve(client, model, "model")
    dataset: dict[str, Any] | None = None
    if data is not None:
        spec["dataset_id"], dataset = _resolve(client, data, "data")
    dataset_id = str(spec.get("dataset_id", ""))
    if flags.get("max_accuracy_drop") is not None and dataset_id and not dataset_id.startswith("builtin:"):
        dataset = dataset or api.get_json(f"/v1/datasets/{dataset_id}")
        if dataset.get("task") == "regression":  # the guard of a regression job is in the target's units
            spec["max_error_increase"] = spec.pop("max_accuracy_drop")

    job = Job(client, api.post_json("/v1/jobs", spec, key=idempotency_key))
    if not wait:
        click.echo(job.id)
        return
    click.echo(f"submitted {job.id}", err=True)
    budgets: dict[str, Any] = {
        "max_latency_ms": max_latency_ms,
        "devices": tuple(spec.get("devices") or ("host",)),
        "max_size_kb": max_size_kb,
        "max_accuracy_drop": flags.get("max_accuracy_drop"),
    }
    outputs = Outputs(summary_md, junit_xml, budgets)
    try:
        job.wait(progress=True, timeout=timeout_s, interval=poll_interval)
    except KeyboardInterrupt:
        _interrupted(api, job.id)
    except (JobFailed, JobCancelled, WaitTimeout) as exc:
        outputs.write(job.id, job.status, None, exc.one_line())
        raise

    out = out_path(out, job.id)
    if job.data.get("kind") == "sweep":
        record, report, misses = _pick_from_sweep(api, job.data, out, report_path, budgets)
        if not misses:
            click.echo(summary(record, report, out, report_path))
    else:
        record, report = job.data, _fetch_results(api, job.id, out, report_path)
        click.echo(summary(record, report, out, report_path))
    outputs.write(str(record["id"]), "succeeded", report)
    misses = [m for _, m in budget_checks(report, **budgets) if m]
    if misses:
        click.echo(f"budget missed ({len(misses)}):", err=True)
        for miss in misses:
            click.echo(f"  - {miss}", err=True)
        sys.exit(EXIT_BUDGET)


__all__ = ["SPEC_FLAGS", "Duration", "ShearsError", "build_spec", "submit"]
