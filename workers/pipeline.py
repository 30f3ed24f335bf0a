"""One job, start to finish: files in from the store, the engine, files and figures back."""

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from app.db import session_scope
from app.jobs import repository, service
from app.settings import get_settings
from app.storage import ArtifactStore, get_store
from app.tables import Artifact, Dataset, Model

log = logging.getLogger("shears.worker")

PROGRESS_EVERY_S = 0.5


class Cancelled(Exception):
    pass


class WaitForSlot(Exception):
    """The job's tenant runs as many jobs as its quota allows: try again later."""


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures a pipeline checks, kept on the job row."""
    base = report["baseline"]
    return {
        "accuracy": report["accuracy"],
        "sparsity": {k: report["sparsity"][k] for k in ("target", "reached", "overall")},
        "params": report["params"],
        "size": report["size"],
        "baseline_size": base["size"],
        "latency": report["latency"],
        "baseline_latency": base["latency"],
        "guard": report["guard"],
        "artifacts": ["model.tflite", "report.json", "model.keras"],
    }


def _load_inputs(job_id: str, store: ArtifactStore, workdir: Path) -> tuple[Path, Any, dict[str, Any]]:
    from pruning.datasets import load_builtin, load_npz

    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        assert job is not None
        model = session.get(Model, job.model_id)
        assert model is not None
        model_artifact = session.get(Artifact, model.artifact_id)
        dataset = (
            session.get(Dataset, job.dataset_id)
            if job.dataset_id and not job.dataset_id.startswith("builtin:")
            else None
        )
        data_artifact = session.get(Artifact, dataset.artifact_id) if dataset else None
        spec, dataset_id, fmt = dict(job.spec), job.dataset_id, model.format
        model_key = model_artifact.storage_key if model_artifact else None
        data_key = data_artifact.storage_key if data_artifact else None
    if model_key is None:
        raise FileNotFoundError("the model's file is missing")
    model_path = workdir / f"input.{fmt}"
    with store.local_copy(model_key) as src:
        shutil.copyfile(src, model_path)
    if data_key:
        with store.local_copy(data_key) as src:
            data = load_npz(src)
    else:
        data = load_builtin(str(dataset_id), seed=int(spec.get("seed", 0)))
    return model_path, data, spec


def execute(job_id: str) -> None:
    from pruning.errors import PruningError

    settings = get_settings()
    with session_scope() as session:
        outcome = service.start(session, job_id, settings)
        tenant_id = job.tenant_id if (job := repository.get_for_worker(session, job_id)) else ""
    if outcome == "skip":
        log.info("job %s is not runnable (finished, cancelled or gone); skipping", job_id)
        return
    if outcome == "wait":
        raise WaitForSlot(job_id)
    store = get_store(settings)
    workdir = Path(tempfile.mkdtemp(prefix=f"shears-{job_id}-"))
    last = [0.0]

    def note(message: str) -> None:
        with session_scope() as s:
            service.log(s, job_id, message)

    def progress(stage: str, fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and fraction < 1.0:
            return
        last[0] = now
        with session_scope() as s:
            if service.record_progress(s, job_id, stage, fraction):
                raise Cancelled()

    try:
        from pruning.run import run
        from pruning.spec import PruneSpec

        model_path, data, spec = _load_inputs(job_id, store, workdir)
        result = run(model_path, data, PruneSpec.from_job_spec(spec), workdir / "out", progress, note)
        artifacts = []
        for kind, path in (
            ("model.tflite", result.tflite_path),
            ("report.json", workdir / "out" / "report.json"),
            ("model.keras", result.keras_path),
        ):
            stored = store.put_file(f"{tenant_id}/jobs/{job_id}/{kind}", path)
            artifacts.append(
                Artifact(
                    tenant_id=tenant_id,
                    job_id=job_id,
                    kind=kind,
                    storage_key=stored.key,
                    bytes=stored.bytes,
                    sha256=stored.sha256,
                )
            )
        with session_scope() as session:
            for artifact in artifacts:
                repository.add_artifact(session, artifact)
            service.succeed(session, job_id, _summary(result.report))
        log.info("job %s succeeded: %s", job_id, json.dumps(result.report["accuracy"]))
    except Cancelled:
        with session_scope() as session:
            service.mark_cancelled(session, job_id)
        log.info("job %s cancelled", job_id)
    except PruningError as exc:
        with session_scope() as session:
            service.fail(session, job_id, exc.code, exc.message)
        log.info("job %s failed: %s %s", job_id, exc.code, exc.message)
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        with session_scope() as session:
            service.fail(session, job_id, "internal_error", f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
