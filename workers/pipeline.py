"""One job, start to finish: files in from the store, the engine in a sandbox, files and figures back."""

import json
import logging
import os
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from app.db import session_scope
from app.jobs import lifecycle, repository
from app.settings import get_settings
from app.storage import ArtifactStore, StorageUnavailable, get_store
from app.tables import Artifact
from contract.engine import EngineRequest, ProgressThrottle
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
                    if not lifecycle.heartbeat(session, self.job_id, self.owner):
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


def _stage_inputs(job_id: str, store: ArtifactStore, workdir: Path) -> EngineRequest:
    """Copy the job's model (and uploaded dataset) into its folder; the engine gets only files."""
    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        assert job is not None
        fmt, model_key, data_key = repository.input_keys(session, job)
        spec, kind, data = dict(job.spec), job.kind, job.dataset_id
    model = workdir / f"input.{fmt}"
    with store.local_copy(model_key) as src:
        shutil.copyfile(src, model)
    if data_key:
        data = str(workdir / "data.npz")
        with store.local_copy(data_key) as src:
            shutil.copyfile(src, data)
    return EngineRequest(kind=kind, spec=spec, model=str(model), data=data, out=str(workdir / "out"))


def execute(job_id: str) -> None:
    """Run one attempt at the job (`JobRun`)."""
    JobRun(job_id).execute()


class JobRun:
    """One attempt at a job by this worker process: take it, stage its inputs, run the engine in its
    sandbox while recording progress and checkpoints, store what it made. The row is the truth: each
    step writes its outcome there (`app.jobs.lifecycle`)."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.settings = get_settings()
        self.owner = owner_id()
        self.tenant_id = ""
        self.beat = Heartbeat(job_id, self.owner, self.settings.heartbeat_s)
        self._throttle = ProgressThrottle(PROGRESS_EVERY_S)

    def execute(self) -> None:
        if not self.take():
            return
        store = get_store(self.settings)
        # The engine sees `job/` only; what the worker takes from it goes beside, where it cannot reach.
        self.base = Path(tempfile.mkdtemp(prefix=f"shears-{self.job_id}-"))
        self.workdir = self.base / "job"
        self.workdir.mkdir()
        self.checkpoint = JobCheckpoint(
            store, self.tenant_id, self.job_id, self.workdir, self.base / "checkpoint-taken"
        )
        try:
            request = _stage_inputs(self.job_id, store, self.workdir)
            request = self.resume(request)
            self.use_host_tables(store)
            self.run_engine(request)
            report = self.store_outputs(store, request.kind)
            # A profile job has no accuracy: the log line must not fail after the job has succeeded.
            log.info("job %s succeeded: %s", self.job_id, report.get("accuracy", "profiled"))
        except BaseException as exc:
            self.settle(exc)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def take(self) -> bool:
        """Mark the job running for this worker; False when there is nothing to run."""
        with session_scope() as session:
            outcome = lifecycle.start(session, self.job_id, self.settings, self.owner)
            job = repository.get_for_worker(session, self.job_id)
            self.tenant_id = job.tenant_id if job else ""
        if outcome == "skip":
            log.info("job %s is not runnable (finished, cancelled or gone); skipping", self.job_id)
            return False
        if outcome == "wait":
            raise WaitForSlot(self.job_id)
        return True

    def resume(self, request: EngineRequest) -> EngineRequest:
        """A prune job writes a checkpoint per round, and resumes from an earlier attempt's."""
        if request.kind != "prune":
            return request
        update = {"checkpoint": str(self.checkpoint.local)}
        if self.checkpoint.fetch(self.workdir / "resume"):  # an earlier attempt finished some rounds
            update["resume"] = str(self.workdir / "resume")
            self.note(f"resuming from the checkpoint after round {self.checkpoint.step}")
        return request.model_copy(update=update)

    def use_host_tables(self, store: ArtifactStore) -> None:
        tables = engine_tables(self.settings, store)
        if tables is not None:
            os.environ["SHEARS_HOST_PROFILE"] = str(tables)

    def run_engine(self, request: EngineRequest) -> None:
        with self.beat:
            run_engine(
                request,
                self.workdir,
                on_progress=self.progress,
                on_log=self.note,
                cpu_seconds=2 * self.settings.job_time_limit_s,  # two cores' worth of the wall-clock limit
                memory_bytes=self.settings.engine_memory_bytes or None,
                on_checkpoint=self.checkpointed,
            )
        if self.beat.lost:
            raise LeaseLost()

    def store_outputs(self, store: ArtifactStore, kind: str) -> dict[str, Any]:
        """Keep the engine's files and the report's headline figures; the job has succeeded."""
        # Copied, not followed, into a folder the engine never saw (workers.outputs).
        taken = take_outputs(self.workdir / "out", OUTPUTS[kind], self.base / "taken")
        artifacts = []
        for path, copy in taken.items():
            artifacts.append(store_artifact(store, self.tenant_id, self.job_id, path.rsplit("/", 1)[-1], copy))
        try:
            report: dict[str, Any] = json.loads(taken["report.json"].read_text())
        except ValueError as exc:
            raise EngineFailed("engine_output_invalid", f"the engine's report is not JSON: {exc}") from None
        with session_scope() as session:
            for artifact in artifacts:
                repository.add_artifact(session, artifact)
            lifecycle.succeed(session, self.job_id, _summary(kind, report))
        self.checkpoint.delete()
        return report

    def note(self, message: str) -> None:
        try:
            with session_scope() as s:
                lifecycle.log(s, self.job_id, message)
        except OperationalError:  # a database blip must not cost the job its run
            log.warning("could not record a log line of %s", self.job_id)

    def progress(self, stage: str, fraction: float) -> None:
        if self.beat.lost:
            raise LeaseLost()
        # Every stage change is written (a short stage must still show); progress within one at most twice a second.
        if not self._throttle.due(stage, fraction):
            return
        try:
            with session_scope() as s:
                cancel = lifecycle.record_progress(s, self.job_id, stage, fraction)
        except OperationalError:  # the database is away: keep computing, report next time
            log.warning("could not record progress of %s", self.job_id)
            return
        if cancel:
            raise Cancelled()

    def checkpointed(self, step: int) -> None:
        try:
            self.checkpoint.save(step)
        except Exception:  # a lost checkpoint costs a retry some work, never the job
            log.warning("could not store the checkpoint of %s after round %d", self.job_id, step, exc_info=True)
            return
        self.note(f"checkpoint stored after round {step}")

    def settle(self, exc: BaseException) -> None:
        """Record how the attempt ended when it did not succeed; re-raise what the task must retry."""
        job_id = self.job_id
        if isinstance(exc, LeaseLost):
            log.warning("job %s was taken over by another worker; dropping this run", job_id)
        elif isinstance(exc, Cancelled):
            with session_scope() as session:
                lifecycle.mark_cancelled(session, job_id)
            self.checkpoint.delete()
            log.info("job %s cancelled", job_id)
        elif isinstance(exc, EngineFailed):
            with session_scope() as session:
                lifecycle.fail(session, job_id, exc.code, exc.message)
            self.checkpoint.delete()
            log.info("job %s failed: %s %s", job_id, exc.code, exc.message)
        elif isinstance(exc, SoftTimeLimitExceeded):
            # Celery's soft limit (a little under the hard one) raised inside the task: the engine child is
            # killed by run_engine on the way out; the job failed on its time, not on a bug.
            limit = get_settings().job_time_limit_s
            with session_scope() as session:
                lifecycle.fail(session, job_id, "time_limit", f"the job ran past its time limit ({limit} s)")
            self.checkpoint.delete()
            log.info("job %s failed: time_limit", job_id)
        elif isinstance(exc, OperationalError):
            raise exc  # the database, not the job: the task retries, and the job is not marked failed
        elif isinstance(exc, StorageUnavailable):
            # The store, not the job: hand the job back to the queue without costing it an attempt,
            # and let the task's retry take it again.
            with session_scope() as session:
                lifecycle.release(session, job_id, self.owner, "the artifact store is unreachable")
            raise exc
        elif isinstance(exc, Exception):
            log.exception("job %s crashed", job_id, exc_info=exc)
            with session_scope() as session:
                lifecycle.fail(session, job_id, "internal_error", f"{type(exc).__name__}: {str(exc)[:500]}")
        else:
            raise exc  # KeyboardInterrupt, SystemExit: not the job's to record
