"""`workers.pipeline.execute` in this process, with the engine replaced: how a job's end is recorded."""

import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from app import db, settings
from app.db import session_scope
from app.migrate import upgrade
from app.storage import get_store
from app.tables import Artifact, Job, Model, Tenant
from contract.engine import EngineRequest
from workers import pipeline

Engine = Callable[..., None]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An embedded deployment (SQLite and folders) under tmp_path, for this process only."""
    monkeypatch.setenv("SHEARS_DATA_DIR", str(tmp_path))
    caches = (settings.get_settings, db.get_engine, db._session_factory)
    for cache in caches:
        cache.cache_clear()
    upgrade(settings.get_settings().resolved_database_url)
    yield tmp_path
    db.get_engine().dispose()
    for cache in caches:
        cache.cache_clear()


def _job(data_dir: Path, kind: str) -> tuple[str, str]:
    """A queued job of `kind` on a stored (dummy) model; (tenant id, job id)."""
    model_file = data_dir / "model.keras"
    model_file.write_bytes(b"not read: the engine is replaced")
    with session_scope() as session:
        tenant = Tenant(name="t")
        session.add(tenant)
        session.flush()
        stored = get_store(settings.get_settings()).put_file(f"{tenant.id}/models/m.keras", model_file)
        artifact = Artifact(
            tenant_id=tenant.id, kind="model", storage_key=stored.key, bytes=stored.bytes, sha256=stored.sha256
        )
        session.add(artifact)
        session.flush()
        model = Model(
            tenant_id=tenant.id, artifact_id=artifact.id, filename="m", format="keras", sha256=stored.sha256, bytes=1
        )
        session.add(model)
        session.flush()
        job = Job(tenant_id=tenant.id, model_id=model.id, kind=kind, spec={}, enqueued_at=datetime.now(UTC))
        session.add(job)
        session.flush()
        return tenant.id, job.id


def _row(job_id: str) -> Job:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def _profile_engine(request: EngineRequest, workdir: Path, **_: Any) -> None:
    """What the engine leaves for a profile job: a model and a report without accuracy."""
    out = Path(request.out)
    out.mkdir(parents=True)
    (out / "model.tflite").write_bytes(b"tflite")
    (out / "report.json").write_text(json.dumps({"size": {"tflite_bytes": 6}, "latency": {}}))


def test_a_profile_job_succeeds_without_a_crash_in_the_log(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The success line logged report["accuracy"], which a profile report lacks: a KeyError after
    # the job had succeeded, logged as "job ... crashed" with a traceback.
    monkeypatch.setattr(pipeline, "run_engine", _profile_engine)
    _, job_id = _job(data_dir, "profile")
    with caplog.at_level(logging.INFO, logger="shears.worker"):
        pipeline.execute(job_id)
    job = _row(job_id)
    assert job.status == "succeeded", (job.error_code, job.error_message)
    assert job.result is not None
    assert job.result["artifacts"] == ["model.tflite", "report.json"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert f"job {job_id} succeeded" in caplog.text


def test_celerys_soft_time_limit_fails_the_job_on_time_and_removes_its_checkpoint(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant_id, job_id = _job(data_dir, "prune")
    stored = data_dir / "artifacts" / tenant_id / "jobs" / job_id / "checkpoint"

    def engine(request: EngineRequest, workdir: Path, *, on_checkpoint: Callable[[int], None], **_: Any) -> None:
        # One round stored, then Celery's soft limit fires inside the task (it raises where the task is).
        assert request.checkpoint is not None
        round_dir = Path(request.checkpoint) / "1"
        round_dir.mkdir(parents=True)
        (round_dir / "weights.npz").write_bytes(b"w")
        (round_dir / "state.json").write_text(json.dumps({"step": 1, "files": ["weights.npz"]}))
        on_checkpoint(1)
        assert (stored / "state.json").exists()
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(pipeline, "run_engine", engine)
    pipeline.execute(job_id)
    job = _row(job_id)
    assert (job.status, job.error_code) == ("failed", "time_limit")  # was internal_error
    assert not stored.exists()  # was left behind
