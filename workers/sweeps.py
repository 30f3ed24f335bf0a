"""Collecting a sweep: once all its points are done, the Pareto set, its report and plots.

Each point of a sweep is an ordinary prune job, run by whichever worker takes it. Every point
that finishes sends `sweeps.collect`; the one that finds all points done writes the sweep's
`report.json` and one `tradeoff-<device>.png` per device, and ends the sweep.
"""

import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from app.db import session_scope
from app.jobs import lifecycle, repository
from app.settings import get_settings
from app.storage import StorageUnavailable, get_store
from app.tables import TERMINAL, Job, JobStatus
from contract.report import SweepReport
from pruning.plots import pareto_front, tradeoff
from workers.pipeline import store_artifact

log = logging.getLogger("shears.worker")


def _latency(entries: list[dict[str, Any]] | None) -> dict[str, float]:
    """Per device: the host's measured figure where there is one, else the estimate."""
    out = {}
    for entry in entries or []:
        value = entry.get("measured_ms") if entry.get("measured_ms") is not None else entry.get("estimate_ms")
        if value is not None:
            out[entry["device"]] = float(value)
    return out


def _point(job: Job) -> dict[str, Any]:
    result = job.result or {}
    target = job.spec.get("target") or {}
    value = target.get("sparsity", target.get("latency_ms"))
    return {
        "job_id": job.id,
        "label": f"{value:g}" if isinstance(value, int | float) else job.id,
        "target": target,
        "status": job.status,
        "accuracy": (result.get("accuracy") or {}).get("after"),
        "latency_ms": _latency(result.get("latency")),
        "size_bytes": (result.get("size") or {}).get("tflite_gzip_bytes"),
        "tflite_bytes": (result.get("size") or {}).get("tflite_bytes"),
        "sparsity": (result.get("sparsity") or {}).get("reached"),
        "macs": (result.get("macs") or {}).get("after"),
        "guard_met": (result.get("guard") or {}).get("met"),
        "is_baseline": False,
    }


def _baseline(jobs: list[Job]) -> dict[str, Any] | None:
    """The dense model, exported the same way: every point's report carries it."""
    for job in jobs:
        result = job.result or {}
        if job.status == JobStatus.SUCCEEDED and result.get("baseline_size"):
            return {
                "job_id": None,
                "label": "dense",
                "accuracy": (result.get("accuracy") or {}).get("before"),
                "latency_ms": _latency(result.get("baseline_latency")),
                "size_bytes": result["baseline_size"].get("tflite_gzip_bytes"),
                "tflite_bytes": result["baseline_size"].get("tflite_bytes"),
                "is_baseline": True,
            }
    return None


def summarize(spec: dict[str, Any], jobs: list[Job]) -> dict[str, Any]:
    """Points, the dense baseline, and per device the Pareto set of (accuracy, latency, size)."""
    sweep = spec.get("sweep") or {}
    points = [_point(job) for job in jobs]
    done = [p for p in points if p["status"] == JobStatus.SUCCEEDED]
    baseline = _baseline(jobs)
    candidates = done + ([baseline] if baseline else [])
    devices = list(
        dict.fromkeys([*(spec.get("devices") or ["host"]), *([sweep["device"]] if sweep.get("device") else [])])
    )
    pareto: dict[str, list[str]] = {}
    for device in devices:
        flat = [{**p, "latency": p["latency_ms"].get(device)} for p in candidates]
        front = pareto_front(flat, {"accuracy": "max", "latency": "min", "size_bytes": "min"})
        pareto[device] = [p["job_id"] or "dense" for p in front]
    summary: dict[str, Any] = {
        "kind": "sweep",
        "points": points,
        "baseline": baseline,
        "pareto": pareto,
        "succeeded": len(done),
        "failed": [
            {"job_id": j.id, "code": j.error_code, "message": j.error_message}
            for j in jobs
            if j.status == JobStatus.FAILED
        ],
    }
    budget = sweep.get("budget_ms")
    if budget is not None:
        device = sweep.get("device") or devices[0]
        within = [p for p in done if (ms := p["latency_ms"].get(device)) is not None and ms <= budget]
        best = max(within, key=lambda p: p["accuracy"] or 0.0, default=None)
        summary["budget"] = {
            "device": device,
            "latency_ms": budget,
            "best_job_id": best["job_id"] if best else None,
            "met_by": [p["job_id"] for p in within],
        }
    return summary


def report_json(summary: dict[str, Any]) -> str:
    """The sweep's `report.json`, once it validates against the contract's `SweepReport`: a mismatch raises (a
    collector bug), and the sweep fails with `collect_failed` rather than publish a report off its schema."""
    text = json.dumps(summary, indent=2)
    SweepReport.model_validate_json(text)
    return text


def collect(sweep_id: str) -> None:
    with session_scope() as session:
        taken = lifecycle.start_collecting(session, sweep_id)
        if taken is None:
            return
        sweep, points = taken
        spec, tenant_id, cancelled = dict(sweep.spec), sweep.tenant_id, sweep.cancel_requested_at is not None
        summary = summarize(spec, points)
    if cancelled:  # a cancelled job leaves no files
        with session_scope() as session:
            lifecycle.mark_cancelled(session, sweep_id)
        return
    try:
        artifacts = _write_and_store(sweep_id, tenant_id, spec.get("sweep") or {}, summary)
    except StorageUnavailable:
        with session_scope() as session:  # let the retry (or the reaper) collect it again at once
            lifecycle.release_collecting(session, sweep_id)
        raise
    except Exception as exc:
        log.exception("collecting sweep %s failed", sweep_id)
        with session_scope() as session:
            lifecycle.fail(session, sweep_id, "collect_failed", f"{type(exc).__name__}: {str(exc)[:500]}")
        return
    with session_scope() as session:
        current = repository.get_for_worker(session, sweep_id, lock=True)
        if current is None or current.status in TERMINAL:
            return
        for artifact in artifacts:
            repository.add_artifact(session, artifact)
        if summary["succeeded"]:
            lifecycle.succeed(session, sweep_id, summary)
        else:
            reason = f"no point of the sweep succeeded; see GET /v1/jobs?parent_id={sweep_id}"
            lifecycle.fail(session, sweep_id, "sweep_failed", reason)
    log.info("sweep %s collected: %s of %s points succeeded", sweep_id, summary["succeeded"], len(summary["points"]))


def _write_and_store(sweep_id: str, tenant_id: str, sweep_spec: dict[str, Any], summary: dict[str, Any]) -> list[Any]:
    """The sweep's report.json and trade-off plots, in the store under the sweep's own key."""
    folder = Path(tempfile.mkdtemp(prefix=f"shears-{sweep_id}-"))
    store = get_store(get_settings())
    try:
        plots = [f"tradeoff-{device}.png" for device in summary["pareto"]] if summary["succeeded"] else []
        summary["artifacts"] = ["report.json", *plots]
        files = {name: folder / name for name in summary["artifacts"]}
        files["report.json"].write_text(report_json(summary))  # checked before a plot is drawn
        plot_points = summary["points"] + ([summary["baseline"]] if summary["baseline"] else [])
        for device in summary["pareto"] if plots else []:
            budget = sweep_spec.get("budget_ms") if (sweep_spec.get("device") or device) == device else None
            tradeoff(plot_points, files[f"tradeoff-{device}.png"], device=device, budget_ms=budget)
        return [store_artifact(store, tenant_id, sweep_id, name, path) for name, path in files.items()]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
