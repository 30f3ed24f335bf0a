"""Job rules: what may be submitted, and what a caller may see. Changes of state: `app.jobs.lifecycle`."""

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app import quotas, webhooks
from app.datasets import repository as datasets
from app.errors import InvalidInput, NotFound, rejected
from app.jobs import events, lifecycle, repository
from app.models import repository as models
from app.settings import Settings
from app.tables import Job, JobStatus
from contract.datasets import BUILTIN, BUILTIN_SHAPES
from contract.errors import PruningError
from contract.spec import JobSpec


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
    try:
        spec.check()
    except PruningError as exc:
        raise rejected(exc) from None
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
    job = _add(session, tenant_id, spec, enqueued_at=datetime.now(UTC))
    events.record(session, job.id, "status", {"status": JobStatus.QUEUED})
    lifecycle.send(session, job)
    return job


def _create_sweep(session: Session, tenant_id: str, spec: JobSpec) -> Job:
    """A sweep is a parent row and one queued prune job per point; any worker may take any point,
    and the last point to finish has the sweep collected (`sweeps.collect`)."""
    now = datetime.now(UTC)
    sweep = _add(session, tenant_id, spec, status=JobStatus.RUNNING, stage="sweeping", started_at=now)
    events.record(session, sweep.id, "status", {"status": JobStatus.RUNNING})
    for point in spec.points():
        job = _add(session, tenant_id, point, parent_id=sweep.id, enqueued_at=now)
        events.record(session, job.id, "status", {"status": JobStatus.QUEUED, "sweep": sweep.id})
        lifecycle.send(session, job)
    return sweep


def _add(session: Session, tenant_id: str, spec: JobSpec, **fields: Any) -> Job:
    """A job row for `spec`, as stored (the spec without its unset fields)."""
    job = Job(
        tenant_id=tenant_id,
        model_id=spec.model_id,
        dataset_id=spec.dataset_id,
        kind=spec.kind,
        spec=spec.model_dump(mode="json", exclude_none=True),
        callback_url=spec.callback_url,
        **fields,
    )
    return repository.add(session, job)


def get_job(session: Session, tenant_id: str, job_id: str, lock: bool = False) -> Job:
    job = repository.get(session, tenant_id, job_id, lock=lock)
    if job is None:
        raise NotFound(f"no job {job_id!r}")
    return job


def queues_without_live_worker(session: Session, settings: Settings) -> list[str]:
    """The job queues that no worker with a fresh heartbeat serves (`/readyz`)."""
    served = repository.queues_served_since(session, datetime.now(UTC) - timedelta(seconds=settings.worker_fresh_s))
    return [q for q in settings.job_queues if q not in served]
