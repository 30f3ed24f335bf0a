"""The job row is the truth: leases, the attempt cap and the reaper, on a real database."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine
from app.jobs import lifecycle
from app.migrate import upgrade
from app.settings import Settings
from app.tables import Artifact, Job, Model, Tenant

SETTINGS = Settings(max_attempts=2, stale_after_s=30, requeue_after_s=60)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    url = f"sqlite:///{tmp_path / 'leases.db'}"
    upgrade(url)
    engine = make_engine(url)
    with sessionmaker(bind=engine)() as s:
        yield s
    engine.dispose()


@pytest.fixture
def job(session: Session) -> Job:
    tenant = Tenant(name="t")
    session.add(tenant)
    session.flush()
    artifact = Artifact(tenant_id=tenant.id, kind="model", storage_key="k", bytes=1, sha256="0" * 64)
    session.add(artifact)
    session.flush()
    model = Model(tenant_id=tenant.id, artifact_id=artifact.id, filename="m", format="keras", sha256="0" * 64, bytes=1)
    session.add(model)
    session.flush()
    row = Job(tenant_id=tenant.id, model_id=model.id, kind="prune", spec={}, enqueued_at=datetime.now(UTC))
    session.add(row)
    session.flush()
    return row


def test_a_live_worker_keeps_its_job(session: Session, job: Job) -> None:
    assert lifecycle.start(session, job.id, SETTINGS, "elsewhere:1") == "run"
    # A second delivery of the same message while the first worker beats: nothing happens.
    assert lifecycle.start(session, job.id, SETTINGS, "elsewhere:2") == "skip"
    assert job.attempts == 1
    assert lifecycle.heartbeat(session, job.id, "elsewhere:1")
    assert not lifecycle.heartbeat(session, job.id, "elsewhere:2")


def test_a_dead_worker_is_taken_over_then_the_cap_fails_the_job(session: Session, job: Job) -> None:
    assert lifecycle.start(session, job.id, SETTINGS, "elsewhere:1") == "run"
    job.heartbeat_at = datetime.now(UTC) - timedelta(seconds=60)
    assert lifecycle.start(session, job.id, SETTINGS, "elsewhere:2") == "run"
    assert job.attempts == 2
    job.heartbeat_at = datetime.now(UTC) - timedelta(seconds=60)
    assert lifecycle.start(session, job.id, SETTINGS, "elsewhere:3") == "skip"
    assert job.status == "failed"
    assert job.error_code == "attempts_exhausted"


def test_reaper_requeues_stale_jobs_and_resends_old_messages(
    session: Session, job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(lifecycle, "send", lambda _session, queued: sent.append(queued.id))
    assert lifecycle.start(session, job.id, SETTINGS, "elsewhere:1") == "run"
    assert lifecycle.reap(session, SETTINGS) == []  # fresh heartbeat: left alone
    job.heartbeat_at = datetime.now(UTC) - timedelta(seconds=60)
    assert lifecycle.reap(session, SETTINGS) == [job.id]
    assert job.status == "queued"
    assert sent == [job.id]
    job.enqueued_at = datetime.now(UTC) - timedelta(seconds=120)
    assert lifecycle.reap(session, SETTINGS) == [job.id]
    assert sent == [job.id, job.id]
    assert job.status == "queued"


def test_an_outage_hands_the_job_back_without_costing_an_attempt(session: Session, job: Job) -> None:
    assert lifecycle.start(session, job.id, SETTINGS, "here:1") == "run"
    assert job.attempts == 1
    lifecycle.release(session, job.id, "someone-else:2", "the artifact store is unreachable")
    assert job.status == "running"  # only the worker holding the lease can hand it back
    lifecycle.release(session, job.id, "here:1", "the artifact store is unreachable")
    assert (job.status, job.owner, job.attempts) == ("queued", None, 0)
    assert lifecycle.start(session, job.id, SETTINGS, "here:3") == "run"
    assert job.attempts == 1


def test_a_job_cancelled_while_it_ran_is_not_turned_into_a_success(session: Session, job: Job) -> None:
    assert lifecycle.start(session, job.id, SETTINGS, "here:1") == "run"
    lifecycle.mark_cancelled(session, job.id)
    lifecycle.succeed(session, job.id, {"accuracy": 1.0})
    assert job.status == "cancelled"
    assert job.result is None
