"""The job's state machine, in one place: every change of a job's status goes through here.

queued -> running (start) -> succeeded | failed | cancelled; running -> queued when its worker is lost
(reap) or hits an outage that is not the job's fault (release). A sweep is running until all its points
are terminal (collect). The row is the truth; messages to workers are sent only once it is committed.
"""

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy.orm import Session

from app import quotas
from app.db import after_commit
from app.errors import Conflict, NotFound
from app.jobs import events, repository
from app.jobs.schemas import JobError
from app.queue import COLLECT_SWEEP, DELIVER_WEBHOOK, RUN_JOB, enqueue
from app.settings import Settings
from app.tables import TERMINAL, Job, JobStatus


def _finish(session: Session, job: Job, status: JobStatus) -> None:
    """Move the job to a terminal state, log it, and send its webhook once that is committed."""
    job.status = status
    job.finished_at = datetime.now(UTC)
    events.record(session, job.id, "status", {"status": status, "error": JobError.of(job)})
    if job.callback_url:
        job_id = job.id
        after_commit(session, lambda: enqueue(DELIVER_WEBHOOK, job_id))
    if job.parent_id:
        _collect(session, job.parent_id)


def _collect(session: Session, sweep_id: str) -> None:
    """Have a worker look at the sweep once this transaction is in: done when all its points are.
    One message per sweep and transaction, however many of its points this transaction ended."""
    pending: set[str] = session.info.setdefault("shears_collect", set())
    if sweep_id not in pending:
        pending.add(sweep_id)
        after_commit(session, lambda: enqueue(COLLECT_SWEEP, sweep_id))


COLLECTING_FOR_S = 300
"""A sweep's collection that started this recently is left to finish; an older one is taken to have died."""


def start_collecting(session: Session, sweep_id: str) -> tuple[Job, list[Job]] | None:
    """Take the sweep to collect, with its points, once they are all terminal; None when it is not
    time yet, it has finished, or another worker is collecting it right now."""
    sweep = repository.get_for_worker(session, sweep_id, lock=True)
    if sweep is None or sweep.status in TERMINAL:
        return None
    points = list(repository.children(session, sweep_id))
    finished = [p for p in points if p.status in TERMINAL]
    sweep.progress = len(finished) / max(len(points), 1)
    if len(finished) < len(points):
        return None
    now = datetime.now(UTC)
    if (
        sweep.stage == "collecting"
        and sweep.heartbeat_at
        and (now - sweep.heartbeat_at).total_seconds() < COLLECTING_FOR_S
    ):
        return None  # another worker is collecting it right now
    sweep.stage, sweep.heartbeat_at = "collecting", now
    return sweep, points


def release_collecting(session: Session, sweep_id: str) -> None:
    """Let the sweep be collected again at once (this collection met an outage)."""
    if (sweep := repository.get_for_worker(session, sweep_id, lock=True)) is not None:
        sweep.heartbeat_at = None


def _lease_lost(job: Job, settings: Settings) -> bool:
    """Whether the worker that marked this job running is gone: its heartbeat went stale, or it
    was a process on this host that no longer exists."""
    if job.heartbeat_at is None or (datetime.now(UTC) - job.heartbeat_at).total_seconds() > settings.stale_after_s:
        return True
    host, _, pid = (job.owner or "").rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
    return False


def start(session: Session, job_id: str, settings: Settings, owner: str) -> Literal["run", "skip", "wait"]:
    """Take the job for the worker process `owner` (`host:pid`) and mark it running.

    `skip` if it is gone, finished, cancelled while queued, or running under a live worker;
    `wait` if its tenant already runs as many jobs as its quota allows. A job whose worker died
    is taken over (and counts another attempt), up to `max_attempts`.
    """
    # Two workers starting two jobs of one tenant must not both see a free running slot.
    repository.lock_tenant_of(session, job_id)
    job = repository.get_for_worker(session, job_id, lock=True)
    if job is None or job.status in TERMINAL:
        return "skip"
    if job.cancel_requested_at is not None:
        _finish(session, job, JobStatus.CANCELLED)
        return "skip"
    if job.status == JobStatus.RUNNING and not _lease_lost(job, settings):
        return "skip"
    if job.attempts >= settings.max_attempts:
        _fail(session, job, "attempts_exhausted", f"the job was started {job.attempts} times without finishing")
        return "skip"
    if job.status == JobStatus.QUEUED and not quotas.may_start(session, job.tenant_id, settings):
        return "wait"
    job.status = JobStatus.RUNNING
    job.attempts += 1
    job.stage = "loading"
    job.progress = 0.0
    job.owner = owner
    job.heartbeat_at = datetime.now(UTC)
    job.started_at = job.started_at or datetime.now(UTC)
    events.record(session, job.id, "status", {"status": JobStatus.RUNNING, "attempt": job.attempts})
    events.record(session, job.id, "progress", {"stage": "loading", "progress": 0.0})
    return "run"


def release(session: Session, job_id: str, owner: str, reason: str) -> None:
    """Give a running job back to the queue, as if this attempt had not been made (its worker hit
    an outage that is not the job's fault); its task is retried by the caller."""
    job = repository.get_for_worker(session, job_id, lock=True)
    if job is None or job.status != JobStatus.RUNNING or job.owner != owner:
        return
    job.status, job.stage, job.owner = JobStatus.QUEUED, None, None
    job.attempts = max(job.attempts - 1, 0)
    job.enqueued_at = datetime.now(UTC)
    events.record(session, job.id, "status", {"status": JobStatus.QUEUED, "reason": reason})


def heartbeat(session: Session, job_id: str, owner: str) -> bool:
    """Refresh the running job's lease; False if it is no longer this worker's to run."""
    job = repository.get_for_worker(session, job_id)
    if job is None or job.status != JobStatus.RUNNING or job.owner != owner:
        return False
    job.heartbeat_at = datetime.now(UTC)
    return True


def reap(session: Session, settings: Settings) -> list[str]:
    """Return jobs of dead workers to the queue (or fail them past the attempt cap), and resend
    the task of jobs queued so long that their message may have been lost. Returns the job ids."""
    now = datetime.now(UTC)
    touched = []
    for job in repository.running(session):
        if not _lease_lost(job, settings):
            continue
        if job.attempts >= settings.max_attempts:
            _fail(session, job, "attempts_exhausted", f"the worker was lost {job.attempts} times")
        else:
            job.status, job.stage, job.owner, job.enqueued_at = JobStatus.QUEUED, None, None, now
            events.record(
                session, job.id, "status", {"status": JobStatus.QUEUED, "reason": "its worker stopped responding"}
            )
            send(session, job)
        touched.append(job.id)
    for job in repository.queued_before(session, now - timedelta(seconds=settings.requeue_after_s)):
        job.enqueued_at = now
        send(session, job)
        touched.append(job.id)
    for sweep in repository.open_sweeps(session):
        # Its collection message may have been lost: look again once all points are done.
        if all(point.status in TERMINAL for point in repository.children(session, sweep.id)):
            _collect(session, sweep.id)
            touched.append(sweep.id)
    return touched


def send(session: Session, job: Job) -> None:
    """Send the job's task, to the queue of its kind of work, once the transaction has committed."""
    job_id, kind = job.id, job.kind
    after_commit(session, lambda: enqueue(RUN_JOB, job_id, kind=kind))


def record_progress(session: Session, job_id: str, stage: str, progress: float) -> bool:
    """Store the stage and progress; returns True when the caller asked to cancel."""
    job = repository.get_for_worker(session, job_id)
    if job is None:
        return True
    if stage != job.stage or progress - job.progress >= 0.01:
        events.record(session, job_id, "progress", {"stage": stage, "progress": round(progress, 4)})
    job.stage, job.progress = stage, progress
    job.heartbeat_at = datetime.now(UTC)
    return job.cancel_requested_at is not None


def log(session: Session, job_id: str, message: str) -> None:
    events.record(session, job_id, "log", {"message": message})


def succeed(session: Session, job_id: str, result: dict[str, Any]) -> None:
    job = repository.get_for_worker(session, job_id, lock=True)
    if job is not None and job.status == JobStatus.RUNNING:  # not one cancelled (or finished) meanwhile
        job.result, job.progress = result, 1.0
        _finish(session, job, JobStatus.SUCCEEDED)


def _fail(session: Session, job: Job, code: str, message: str) -> None:
    job.error_code, job.error_message = code, message[:2000]
    _finish(session, job, JobStatus.FAILED)


def fail(session: Session, job_id: str, code: str, message: str) -> None:
    job = repository.get_for_worker(session, job_id)
    if job is not None and job.status not in TERMINAL:
        _fail(session, job, code, message)


def mark_cancelled(session: Session, job_id: str) -> None:
    job = repository.get_for_worker(session, job_id)
    if job is not None and job.status not in TERMINAL:
        _finish(session, job, JobStatus.CANCELLED)


def cancel(session: Session, tenant_id: str, job_id: str) -> Job:
    """A queued job is cancelled now; a running one stops at its next step; a sweep cancels its
    points and ends once they have."""
    job = repository.get(session, tenant_id, job_id, lock=True)  # a worker may be starting it right now
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    if job.status in TERMINAL:
        raise Conflict(f"job {job_id} has already {job.status}", code="job_finished")
    job.cancel_requested_at = datetime.now(UTC)
    if job.status == JobStatus.QUEUED:
        _finish(session, job, JobStatus.CANCELLED)
    if job.kind == "sweep":
        for point in repository.children(session, job.id, lock=True):
            if point.status not in TERMINAL:
                point.cancel_requested_at = job.cancel_requested_at
                if point.status == JobStatus.QUEUED:
                    _finish(session, point, JobStatus.CANCELLED)
        _collect(session, job.id)
    return job
