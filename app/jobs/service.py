"""Job rules: what may be submitted, and every change of a job's state. The row is the truth."""

import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import quotas, webhooks
from app.datasets import repository as datasets
from app.db import after_commit
from app.errors import Conflict, InvalidInput, NotFound
from app.jobs import events, repository
from app.jobs.schemas import JobSpec, Target
from app.models import repository as models
from app.queue import COLLECT_SWEEP, DELIVER_WEBHOOK, RUN_JOB, enqueue
from app.settings import Settings
from app.tables import TERMINAL, Job, Worker
from contract.datasets import BUILTIN, BUILTIN_SHAPES
from contract.devices import device_names
from contract.spec import LATENCY_NEEDS_CHANNELS

# What the engine can do today; the rest of the contract's options answer 422 until it can.
SUPPORTED = {"kind": ("prune", "profile", "sweep")}


def _not_yet(field: str, value: Any) -> InvalidInput:
    return InvalidInput(
        f"{field} {value!r} is not supported yet; supported: {', '.join(SUPPORTED[field])}", code="not_supported_yet"
    )


def sweep_points(spec: JobSpec) -> list[JobSpec]:
    """The prune jobs of a sweep: its spec with one target each."""
    assert spec.sweep is not None
    sweep = spec.sweep
    devices = list(dict.fromkeys([*spec.devices, *([sweep.device] if sweep.device else [])]))
    common = {"kind": "prune", "sweep": None, "callback_url": None, "devices": devices}
    if sweep.sparsities is not None:
        targets = [Target(sparsity=s) for s in sweep.sparsities]
    else:
        targets = [Target(latency_ms=t, device=sweep.device) for t in sweep.latency_ms or []]
    return [spec.model_copy(update={**common, "target": t}) for t in targets]


def _check_supported(spec: JobSpec) -> None:
    if spec.kind not in SUPPORTED["kind"]:
        raise _not_yet("kind", spec.kind)
    if spec.kind == "sweep":
        if spec.sweep is None:
            raise InvalidInput(
                'a sweep needs "sweep": {"sparsities": [...]} or {"latency_ms": [...], "device": ...}',
                code="invalid_spec",
            )
        if spec.target is not None:
            raise InvalidInput("a sweep's points set the target: give sweep, not target", code="invalid_spec")
        if spec.granularity == "n_of_m":
            raise InvalidInput("n_of_m fixes the sparsity at 1 - n/m: there is nothing to sweep", code="invalid_spec")
        for point in sweep_points(spec):
            _check_supported(point)
        return
    if spec.sweep is not None:
        raise InvalidInput('sweep settings need kind "sweep"', code="invalid_spec")
    if spec.kind == "profile":
        pass
    elif spec.granularity == "n_of_m":
        if spec.target is not None:
            raise InvalidInput("n_of_m fixes the sparsity at 1 - n/m: give n_of_m, not a target", code="invalid_spec")
    elif spec.target is None:
        raise InvalidInput('a prune job needs a target, e.g. {"sparsity": 0.5}', code="invalid_spec")
    elif spec.target.latency_ms is not None:
        if spec.granularity != "channel":
            raise InvalidInput(LATENCY_NEEDS_CHANNELS, code="invalid_spec")
        if spec.target.device not in device_names():
            names = ", ".join(sorted(device_names()))
            raise InvalidInput(f"unknown device {spec.target.device!r}; known devices: {names}", code="unknown_device")
    elif spec.target.macs_reduction is not None and spec.granularity != "channel":
        raise InvalidInput("a macs_reduction target needs granularity channel", code="invalid_spec")
    if spec.block > 1 and spec.granularity != "unstructured":
        raise InvalidInput("block needs granularity unstructured", code="invalid_spec")
    if spec.n_of_m is not None and spec.granularity != "n_of_m":
        raise InvalidInput("n_of_m settings need granularity n_of_m", code="invalid_spec")
    known = device_names()
    unknown = [d for d in spec.devices if d not in known]
    if unknown:
        names = ", ".join(sorted(known))
        raise InvalidInput(
            f"unknown device(s): {', '.join(unknown)}; known devices: {names} (GET /v1/devices)", code="unknown_device"
        )


def _sample_shape(session: Session, tenant_id: str, dataset_id: str) -> tuple[list[Any], str | None]:
    if dataset_id.startswith("builtin:"):
        if dataset_id not in BUILTIN:
            raise NotFound(f"no built-in dataset {dataset_id!r}; choose from {', '.join(BUILTIN)}")
        return BUILTIN_SHAPES[dataset_id], None
    dataset = datasets.get(session, tenant_id, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return list(dataset.arrays["x_train"]["shape"][1:]), dataset.task


def _has_noise(session: Session, tenant_id: str, dataset_id: str) -> bool:
    dataset = None if dataset_id.startswith("builtin:") else datasets.get(session, tenant_id, dataset_id)
    return dataset is not None and bool((dataset.summary or {}).get("background_noise"))


def create_job(session: Session, tenant_id: str, spec: JobSpec, settings: Settings) -> Job:
    """Record a queued job; its task is sent only once the row is committed."""
    _check_supported(spec)
    if spec.callback_url is not None:
        webhooks.check_url(spec.callback_url, settings.webhook_allow_private)
    quotas.check_submit(
        session,
        tenant_id,
        settings,
        incoming=len(spec.sweep.sparsities or spec.sweep.latency_ms or []) if spec.sweep else 1,
    )
    model = models.get(session, tenant_id, spec.model_id)
    if model is None:
        raise NotFound(f"no model {spec.model_id!r}")
    if spec.kind in ("prune", "sweep"):
        if model.format == "tflite":
            raise InvalidInput("a .tflite model cannot be pruned: upload the Keras model", code="unsupported_model")
        if spec.dataset_id is None:
            raise InvalidInput("a prune job needs a dataset_id (or builtin:digits / builtin:har)", code="invalid_spec")
    elif spec.quantization == "int8" and model.format != "tflite" and spec.dataset_id is None:
        raise InvalidInput("an int8 export calibrates on data: give a dataset_id", code="missing_data")
    if spec.dataset_id is not None:
        shape, task = _sample_shape(session, tenant_id, spec.dataset_id)
        if model.input_shape and list(model.input_shape[1:]) != shape and None not in model.input_shape[1:]:
            raise InvalidInput(
                f"the model takes samples of shape {model.input_shape[1:]}, the dataset has {shape}",
                code="data_mismatch",
            )
        if task == "regression" and spec.max_accuracy_drop is not None:
            raise InvalidInput("a regression dataset is guarded by max_error_increase", code="invalid_spec")
        augment = spec.finetune.augment if spec.finetune else None
        if augment is not None and augment.background_noise and not _has_noise(session, tenant_id, spec.dataset_id):
            raise InvalidInput(
                "augment.background_noise needs an audio dataset uploaded with a _background_noise_ folder",
                code="invalid_spec",
            )
    if spec.kind == "sweep":
        return _create_sweep(session, tenant_id, spec)
    job = repository.add(
        session,
        Job(
            tenant_id=tenant_id,
            model_id=model.id,
            dataset_id=spec.dataset_id,
            kind=spec.kind,
            spec=spec.model_dump(mode="json", exclude_none=True),
            callback_url=spec.callback_url,
            enqueued_at=datetime.now(UTC),
        ),
    )
    events.record(session, job.id, "status", {"status": "queued"})
    _send(session, job)
    return job


def _create_sweep(session: Session, tenant_id: str, spec: JobSpec) -> Job:
    """A sweep is a parent row and one queued prune job per point; any worker may take any point,
    and the last point to finish has the sweep collected (`sweeps.collect`)."""
    now = datetime.now(UTC)
    sweep = repository.add(
        session,
        Job(
            tenant_id=tenant_id,
            model_id=spec.model_id,
            dataset_id=spec.dataset_id,
            kind="sweep",
            spec=spec.model_dump(mode="json", exclude_none=True),
            callback_url=spec.callback_url,
            status="running",
            stage="sweeping",
            started_at=now,
        ),
    )
    events.record(session, sweep.id, "status", {"status": "running"})
    for point in sweep_points(spec):
        job = repository.add(
            session,
            Job(
                tenant_id=tenant_id,
                model_id=spec.model_id,
                dataset_id=spec.dataset_id,
                kind="prune",
                spec=point.model_dump(mode="json", exclude_none=True),
                parent_id=sweep.id,
                enqueued_at=now,
            ),
        )
        events.record(session, job.id, "status", {"status": "queued", "sweep": sweep.id})
        _send(session, job)
    return sweep


def get_job(session: Session, tenant_id: str, job_id: str, lock: bool = False) -> Job:
    job = repository.get(session, tenant_id, job_id, lock=lock)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def request_cancel(session: Session, tenant_id: str, job_id: str) -> Job:
    """A queued job is cancelled now; a running one stops at its next step; a sweep cancels its
    points and ends once they have."""
    job = get_job(session, tenant_id, job_id, lock=True)  # a worker may be starting it right now
    if job.status in TERMINAL:
        raise Conflict(f"job {job_id} has already {job.status}", code="job_finished")
    job.cancel_requested_at = datetime.now(UTC)
    if job.status == "queued":
        _finish(session, job, "cancelled")
    if job.kind == "sweep":
        for point in repository.children(session, job.id, lock=True):
            if point.status not in TERMINAL:
                point.cancel_requested_at = job.cancel_requested_at
                if point.status == "queued":
                    _finish(session, point, "cancelled")
        _collect(session, job.id)
    return job


def to_out(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "stage": job.stage,
        "progress": round(job.progress, 4),
        "attempts": job.attempts,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "result": job.result,
        "model_id": job.model_id,
        "dataset_id": job.dataset_id,
        "spec": job.spec,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "cancel_requested": job.cancel_requested_at is not None,
        "parent_id": job.parent_id,
    }


# Worker-side transitions -------------------------------------------------------------


def _finish(session: Session, job: Job, status: str) -> None:
    """Move the job to a terminal state, log it, and send its webhook once that is committed."""
    job.status = status
    job.finished_at = datetime.now(UTC)
    events.record(session, job.id, "status", {"status": status, "error": to_out(job)["error"]})
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
        _finish(session, job, "cancelled")
        return "skip"
    if job.status == "running" and not _lease_lost(job, settings):
        return "skip"
    if job.attempts >= settings.max_attempts:
        _fail(session, job, "attempts_exhausted", f"the job was started {job.attempts} times without finishing")
        return "skip"
    if job.status == "queued" and not quotas.may_start(session, job.tenant_id, settings):
        return "wait"
    job.status = "running"
    job.attempts += 1
    job.stage = "loading"
    job.progress = 0.0
    job.owner = owner
    job.heartbeat_at = datetime.now(UTC)
    job.started_at = job.started_at or datetime.now(UTC)
    events.record(session, job.id, "status", {"status": "running", "attempt": job.attempts})
    events.record(session, job.id, "progress", {"stage": "loading", "progress": 0.0})
    return "run"


def release(session: Session, job_id: str, owner: str, reason: str) -> None:
    """Give a running job back to the queue, as if this attempt had not been made (its worker hit
    an outage that is not the job's fault); its task is retried by the caller."""
    job = repository.get_for_worker(session, job_id, lock=True)
    if job is None or job.status != "running" or job.owner != owner:
        return
    job.status, job.stage, job.owner = "queued", None, None
    job.attempts = max(job.attempts - 1, 0)
    job.enqueued_at = datetime.now(UTC)
    events.record(session, job.id, "status", {"status": "queued", "reason": reason})


def heartbeat(session: Session, job_id: str, owner: str) -> bool:
    """Refresh the running job's lease; False if it is no longer this worker's to run."""
    job = repository.get_for_worker(session, job_id)
    if job is None or job.status != "running" or job.owner != owner:
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
            job.status, job.stage, job.owner, job.enqueued_at = "queued", None, None, now
            events.record(session, job.id, "status", {"status": "queued", "reason": "its worker stopped responding"})
            _send(session, job)
        touched.append(job.id)
    for job in repository.queued_before(session, now - timedelta(seconds=settings.requeue_after_s)):
        job.enqueued_at = now
        _send(session, job)
        touched.append(job.id)
    for sweep in repository.open_sweeps(session):
        # Its collection message may have been lost: look again once all points are done.
        if all(point.status in TERMINAL for point in repository.children(session, sweep.id)):
            _collect(session, sweep.id)
            touched.append(sweep.id)
    return touched


def _send(session: Session, job: Job) -> None:
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
    if job is not None and job.status == "running":  # not one cancelled (or finished) meanwhile
        job.result, job.progress = result, 1.0
        _finish(session, job, "succeeded")


def _fail(session: Session, job: Job, code: str, message: str) -> None:
    job.error_code, job.error_message = code, message[:2000]
    _finish(session, job, "failed")


def fail(session: Session, job_id: str, code: str, message: str) -> None:
    job = repository.get_for_worker(session, job_id)
    if job is not None and job.status not in TERMINAL:
        _fail(session, job, code, message)


def mark_cancelled(session: Session, job_id: str) -> None:
    job = repository.get_for_worker(session, job_id)
    if job is not None and job.status not in TERMINAL:
        _finish(session, job, "cancelled")


def queues_without_live_worker(session: Session, settings: Settings) -> list[str]:
    """The job queues that no worker with a fresh heartbeat serves (`/readyz`)."""
    fresh = datetime.now(UTC) - timedelta(seconds=settings.worker_fresh_s)
    served: set[str] = set()
    for queues in session.scalars(select(Worker.queues).where(Worker.heartbeat_at >= fresh)):
        served.update(q for q in queues.split(",") if q)
    return [q for q in settings.job_queues if q not in served]
