"""The sweep's report holds the contract (`SweepReport`) as the collector assembles it, and the report route's
union (`AnyReport`) tells a sweep's report from a job's. A live sweep's is checked in tests/api/test_sweeps.py."""

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from app.tables import Job, JobStatus
from contract.report import AnyReport, Report, SweepReport
from workers import sweeps

REPORTS: TypeAdapter[Any] = TypeAdapter(AnyReport)


def _size(gzip_bytes: int) -> dict[str, int]:
    return {"keras_bytes": 4 * gzip_bytes, "tflite_bytes": 2 * gzip_bytes, "tflite_gzip_bytes": gzip_bytes}


def _point(job_id: str, sparsity: float, accuracy: float, ms: float, gzip_bytes: int) -> Job:
    """A succeeded point whose `result` has the shape workers.pipeline keeps on a prune job's row."""
    result = {
        "accuracy": {"before": 0.97, "after": accuracy, "metric": "accuracy", "split": "val"},
        "sparsity": {"target": sparsity, "reached": sparsity, "overall": sparsity},
        "macs": {"before": 1000, "after": int(1000 * (1 - sparsity))},
        "size": _size(gzip_bytes),
        "baseline_size": _size(3000),
        "latency": [{"device": "host", "measured_ms": ms, "estimate_ms": ms * 2}],
        "baseline_latency": [{"device": "host", "measured_ms": 2.0, "estimate_ms": 4.0}],
        "guard": {"met": True},
    }
    return Job(id=job_id, spec={"target": {"sparsity": sparsity}}, status=JobStatus.SUCCEEDED, result=result)


def _summary() -> dict[str, Any]:
    failed = Job(
        id="job_c", spec={"target": {"sparsity": 0.9}}, status=JobStatus.FAILED, error_code="x", error_message="y"
    )
    jobs = [_point("job_a", 0.3, 0.96, 1.5, 2000), _point("job_b", 0.6, 0.9, 1.0, 1200), failed]
    summary = sweeps.summarize({"devices": ["host"], "sweep": {"budget_ms": 1.2}}, jobs)
    summary["artifacts"] = ["report.json", "tradeoff-host.png"]  # as the collector adds them
    return summary


def test_the_collectors_report_holds_the_contract() -> None:
    written = SweepReport.model_validate_json(sweeps.report_json(_summary()))
    assert written.kind == "sweep"
    assert [(p.job_id, p.status, p.is_baseline) for p in written.points] == [
        ("job_a", "succeeded", False),
        ("job_b", "succeeded", False),
        ("job_c", "failed", False),
    ]
    assert written.points[2].accuracy is None
    assert written.points[2].latency_ms == {}
    assert written.baseline is not None
    assert written.baseline.job_id is None
    assert written.baseline.is_baseline
    assert written.pareto == {"host": ["job_a", "job_b", "dense"]}
    assert [(f.job_id, f.code) for f in written.failed] == [("job_c", "x")]
    assert written.budget is not None
    assert written.budget.best_job_id == "job_b"
    assert isinstance(REPORTS.validate_python(_summary()), SweepReport)  # the route's union picks it by `kind`


def test_a_report_off_the_contract_is_refused_and_nothing_is_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    summary = _summary()
    summary["points"][0]["latency_ms"] = {"host": "fast"}
    with pytest.raises(ValidationError, match=r"points\.0\.latency_ms\.host"):
        sweeps.report_json(summary)
    stored: list[str] = []
    monkeypatch.setattr(sweeps, "get_store", lambda settings: None)
    monkeypatch.setattr(sweeps, "store_artifact", lambda store, tenant, job, name, path: stored.append(name))
    missing = _summary()
    del missing["budget"]["device"]
    with pytest.raises(ValidationError, match=r"budget\.device"):  # collect() fails the sweep with collect_failed
        sweeps._write_and_store("job_s", "tenant", {}, missing)
    assert stored == []
    baseline_as_point = _summary()
    baseline_as_point["baseline"]["is_baseline"] = False
    with pytest.raises(ValidationError, match="is_baseline"):
        sweeps.report_json(baseline_as_point)


def test_the_route_union_reads_a_job_report_as_a_report() -> None:
    job = {"kind": "profile", "size": _size(100), "latency": []}
    assert isinstance(REPORTS.validate_python(job), Report)
    assert isinstance(REPORTS.validate_python({k: v for k, v in job.items() if k != "kind"}), Report)  # a prune job's
    with pytest.raises(ValidationError, match="points"):  # `kind: sweep` is read as a sweep's, whatever else it holds
        REPORTS.validate_python({**job, "kind": "sweep"})
