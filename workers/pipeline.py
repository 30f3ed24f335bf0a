"""One job, start to finish: files in from the store, the engine in a sandbox, files and figures back."""

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from app.db import session_scope
from app.jobs import repository, service
from app.settings import get_settings
from app.storage import ArtifactStore, StorageUnavailable, get_store
from app.tables import Artifact, Dataset, Model
from workers.checkpoints import JobCheckpoint
from workers.host_calibration import engine_tables
from workers.outputs import take_outputs
from workers.sandbox import EngineFailed, run_engine

log = logging.getLogger("shears.worker")

PROGRESS_EVERY_S = 0.5
# Files the engine leaves in its out folder, stored under their base name (the artifact's name).
OUTPUTS = {
    "prune": (
        "model.tflite",
        "report.json",
        "model.keras",
        "plots/layers.png",
        "plots/training.png",
        "tensorboard.tar.gz",
    ),
    "profile": ("model.tflite", "report.json"),
}


def artifact_names(kind: str) -> list[str]:
    return [path.rsplit("/", 1)[-1] for path in OUTPUTS[kind]]


class Cancelled(Exception):
    pass


class WaitForSlot(Exception):
    """The job's tenant runs as many jobs as its quota allows: try again later."""


class LeaseLost(Exception):
    """Another worker took the job over (this one was thought dead): stop without a word."""


def store_artifact(store: ArtifactStore, tenant_id: str, job_id: str, name: str, path: Path) -> Artifact:
    """Put a file the job produced in the store under the job's own key; the row is added by the caller."""
    stored = store.put_file(f"{tenant_id}/jobs/{job_id}/{name}", path)
    return Artifact(
        tenant_id=tenant_id, job_id=job_id, kind=name, storage_key=stored.key, bytes=stored.bytes, sha256=stored.sha256
    )


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Refreshes the job's lease every few seconds while the engine runs."""

    def __init__(self, job_id: str, owner: str, every_s: float) -> None:
        self.job_id, self.owner, self.every_s = job_id, owner, every_s
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                with session_scope() as session:
                    if not service.heartbeat(session, self.job_id, self.owner):
                        self.lost = True
                        return
            except Exception:  # a database hiccup: the next beat tries again
                log.warning("heartbeat for %s failed", self.job_id, exc_info=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _summary(kind: str, report: dict[str, Any]) -> dict[str, Any]:
    """The headline figures a pipeline checks, kept on the job row."""
    if kind == "profile":
        return {"size": report["size"], "latency": report["latency"], "artifacts": artifact_names(kind)}
    base = report["baseline"]
    return {
        "accuracy": report["accuracy"],
        "sparsity": {k: report["sparsity"][k] for k in ("target", "reached", "overall")},
        "params": report["params"],
        "macs": report["macs"],
        "size": report["size"],
        "baseline_size": base["size"],
        "latency": report["latency"],
        "baseline_latency": base["latency"],
        "guard": report["guard"],
        "artifacts": artifact_names(kind),
        "timings_s": report.get("timings_s", {}),
    }


def _stage_inputs(job_id: str, store: ArtifactStore, workdir: Path) -> dict[str, Any]:
    """Copy the job's model (and uploaded dataset) into its folder; the engine gets only files."""
    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        assert job is not None
        model = session.get(Model, job.model_id)
        assert model is not None
        model_key = session.get(Artifact, model.artifact_id).storage_key  # type: ignore[union-attr]
        data_key = None
        if job.dataset_id and not job.dataset_id.startswith("builtin:"):
            dataset = session.get(Dataset, job.dataset_id)
            assert dataset is not None
            data_key = session.get(Artifact, dataset.artifact_id).storage_key  # type: ignore[union-attr]
        request: dict[str, Any] = {"spec": dict(job.spec), "data": job.dataset_id, "out": str(workdir / "out")}
        request["kind"] = job.kind
        fmt = model.format
    request["model"] = str(workdir / f"input.{fmt}")
    with store.local_copy(model_key) as src:
        shutil.copyfile(src, request["model"])
    if data_key:
        request["data"] = str(workdir / "data.npz")
        with store.local_copy(data_key) as src:
            shutil.copyfile(src, request["data"])
    return request


def execute(job_id: str) -> None:
    settings = get_settings()
    owner = owner_id()
    with session_scope() as session:
        outcome = service.start(session, job_id, settings, owner)
        tenant_id = job.tenant_id if (job := repository.get_for_worker(session, job_id)) else ""
    if outcome == "skip":
        log.info("job %s is not runnable (finished, cancelled or gone); skipping", job_id)
        return
    if outcome == "wait":
        raise WaitForSlot(job_id)
    store = get_store(settings)
    # The engine sees `job/` only; what the worker takes from it goes beside, where it cannot reach.
    base = Path(tempfile.mkdtemp(prefix=f"shears-{job_id}-"))
    workdir = base / "job"
    workdir.mkdir()
    last = [0.0]

    def note(message: str) -> None:
        try:
            with session_scope() as s:
                service.log(s, job_id, message)
        except OperationalError:  # a database blip must not cost the job its run
            log.warning("could not record a log line of %s", job_id)

    beat = Heartbeat(job_id, owner, settings.heartbeat_s)
    last_stage = [""]

    def progress(stage: str, fraction: float) -> None:
        if beat.lost:
            raise LeaseLost()
        now = time.monotonic()
        # Every stage change is written (a short stage must still show); progress within one at most twice a second.
        if stage == last_stage[0] and now - last[0] < PROGRESS_EVERY_S and fraction < 1.0:
            return
        last[0], last_stage[0] = now, stage
        try:
            with session_scope() as s:
                cancel = service.record_progress(s, job_id, stage, fraction)
        except OperationalError:  # the database is away: keep computing, report next time
            log.warning("could not record progress of %s", job_id)
            return
        if cancel:
            raise Cancelled()

    checkpoint = JobCheckpoint(store, tenant_id, job_id, workdir, base / "checkpoint-taken")

    def checkpointed(step: int) -> None:
        try:
            checkpoint.save(step)
        except Exception:  # a lost checkpoint costs a retry some work, never the job
            log.warning("could not store the checkpoint of %s after round %d", job_id, step, exc_info=True)
            return
        note(f"checkpoint stored after round {step}")

    try:
        request = _stage_inputs(job_id, store, workdir)
        if request["kind"] == "prune":
            request["checkpoint"] = str(checkpoint.local)
            if checkpoint.fetch(workdir / "resume"):  # an earlier attempt finished some rounds
                request["resume"] = str(workdir / "resume")
                note(f"resuming from the checkpoint after round {checkpoint.step}")
        tables = engine_tables(settings, store)
        if tables is not None:
            os.environ["SHEARS_HOST_PROFILE"] = str(tables)
        with beat:
            run_engine(
                request,
                workdir,
                on_progress=progress,
                on_log=note,
                cpu_seconds=2 * settings.job_time_limit_s,  # two cores' worth of the wall-clock limit
                memory_bytes=settings.engine_memory_bytes or None,
                on_checkpoint=checkpointed,
            )
        if beat.lost:
            raise LeaseLost()
        # Copied, not followed, into a folder the engine never saw (workers.outputs).
        taken = take_outputs(workdir / "out", OUTPUTS[request["kind"]], base / "taken")
        artifacts = []
        for path, copy in taken.items():
            artifacts.append(store_artifact(store, tenant_id, job_id, path.rsplit("/", 1)[-1], copy))
        try:
            report = json.loads(taken["report.json"].read_text())
        except ValueError as exc:
            raise EngineFailed("engine_output_invalid", f"the engine's report is not JSON: {exc}") from None
        with session_scope() as session:
            for artifact in artifacts:
                repository.add_artifact(session, artifact)
            service.succeed(session, job_id, _summary(request["kind"], report))
        checkpoint.delete()
        # A profile job has no accuracy: the log line must not fail after the job has succeeded.
        log.info("job %s succeeded: %s", job_id, report.get("accuracy", "profiled"))
    except LeaseLost:
        log.warning("job %s was taken over by another worker; dropping this run", job_id)
    except Cancelled:
        with session_scope() as session:
            service.mark_cancelled(session, job_id)
        checkpoint.delete()
        log.info("job %s cancelled", job_id)
    except EngineFailed as exc:
        with session_scope() as session:
            service.fail(session, job_id, exc.code, exc.message)
        checkpoint.delete()
        log.info("job %s failed: %s %s", job_id, exc.code, exc.message)
    except SoftTimeLimitExceeded:
        # Celery's soft limit (a little under the hard one) raised inside the task: the engine child is
        # killed by run_engine on the way out; the job failed on its time, not on a bug.
        limit = get_settings().job_time_limit_s
        with session_scope() as session:
            service.fail(session, job_id, "time_limit", f"the job ran past its time limit ({limit} s)")
        checkpoint.delete()
        log.info("job %s failed: time_limit", job_id)
    except OperationalError:
        raise  # the database, not the job: the task retries, and the job is not marked failed
    except StorageUnavailable:
        # The store, not the job: hand the job back to the queue without costing it an attempt,
        # and let the task's retry take it again.
        with session_scope() as session:
            service.release(session, job_id, owner, "the artifact store is unreachable")
        raise
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        with session_scope() as session:
            service.fail(session, job_id, "internal_error", f"{type(exc).__name__}: {str(exc)[:500]}")
    finally:
        shutil.rmtree(base, ignore_errors=True)
