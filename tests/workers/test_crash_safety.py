"""Jobs survive dead workers and lost messages, and are never run twice at once."""

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.services import Service, read_events, wait_for_job


def _engine_process(job_id: str) -> int | None:
    """The pid of the `pruning.job` process running this job."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"pruning.job" in cmdline and any(job_id.encode() in part for part in cmdline):
            return int(entry.name)
    return None


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.fixture(scope="module")
def crashy(tmp_path_factory: pytest.TempPathFactory) -> Service:
    service = Service(
        tmp_path_factory.mktemp("crashy"),
        {"SHEARS_HEARTBEAT_S": "1", "SHEARS_STALE_AFTER_S": "8", "SHEARS_REQUEUE_AFTER_S": "5"},
    )
    service.start()
    yield service  # type: ignore[misc]
    service.stop()


def _wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `condition` until it holds; fail with `what` after `timeout_s` (no fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _checkpoint_step(service: Service, job_id: str) -> int:
    """The round of the job's stored checkpoint (0: none yet)."""
    states = list((service.root / "artifacts").glob(f"*/jobs/{job_id}/checkpoint/state.json"))
    try:
        return int(json.loads(states[0].read_text())["step"]) if states else 0
    except (OSError, ValueError):  # being replaced right now
        return 0


def _artifact_rows(service: Service, job_id: str) -> list[str]:
    with sqlite3.connect(service.root / "shears.db") as db:
        return sorted(k for (k,) in db.execute("SELECT kind FROM artifacts WHERE job_id = ?", (job_id,)))


def test_worker_children_killed_during_finetuning_resume_from_their_last_round(
    crashy: Service, digits_model: Path
) -> None:
    with crashy.client(crashy.new_key()) as c:
        with digits_model.open("rb") as f:
            model_id = c.post("/v1/models", files={"file": ("m.keras", f)}).json()["id"]
        spec = {
            "model_id": model_id,
            "dataset_id": "builtin:digits",
            "target": {"sparsity": 0.6},
            "schedule": {"kind": "polynomial", "steps": 3},
            "finetune": {"epochs": 3, "batch_size": 32},
        }
        # Two jobs: the second is killed in the worker child that replaced the first one killed (a
        # third, as before, repeated the second's path).
        job_ids = [c.post("/v1/jobs", json=spec).json()["id"] for _ in range(2)]
        for job_id in job_ids:  # one worker process: the jobs run one after the other
            deadline = time.monotonic() + 180
            # Kill during the fine-tuning of a round after the first one has been stored.
            while not (
                0 < _checkpoint_step(crashy, job_id) < 3 and c.get(f"/v1/jobs/{job_id}").json()["stage"] == "finetuning"
            ):
                assert time.monotonic() < deadline, c.get(f"/v1/jobs/{job_id}").json()
                time.sleep(0.1)
            engine = _engine_process(job_id)
            assert engine is not None
            os.kill(_parent(engine), signal.SIGKILL)
            # The engine process dies with the worker child that started it (a zombie has no cmdline).
            _wait_until(
                lambda job_id=job_id: _engine_process(job_id) is None, 10, f"the engine of {job_id} outlived its worker"
            )
        for job_id in job_ids:
            job = wait_for_job(c, job_id, timeout=300)
            assert job["status"] == "succeeded", job
            assert job["attempts"] == 2
            statuses = [e for e in read_events(c, job_id) if e["type"] == "status"]
            assert [e["data"]["status"] for e in statuses].count("succeeded") == 1
            report = c.get(f"/v1/jobs/{job_id}/report").json()
            assert report["resumed_from"]["stage"] == "finetuning"
            assert report["resumed_from"]["step"] >= 1
            # The rounds of the first attempt are in the report once each, with those of the second.
            assert [r["step"] for r in report["schedule"]["rounds"]] == [1, 2, 3]
            assert report["sparsity"]["overall"] == pytest.approx(0.6, abs=0.01)
            assert c.get(f"/v1/jobs/{job_id}/model.tflite").status_code == 200
            # One set of artifacts (a row per kind, a file per row), and no checkpoint left behind.
            kinds = _artifact_rows(crashy, job_id)
            assert len(kinds) == len(set(kinds))
            assert {"model.keras", "model.tflite", "report.json"} <= set(kinds)
            (folder,) = (crashy.root / "artifacts").glob(f"*/jobs/{job_id}")
            assert sorted(p.name for p in folder.iterdir()) == kinds


def test_a_lost_message_is_sent_again(crashy: Service, digits_model: Path) -> None:
    with crashy.client(crashy.new_key()) as c:
        with digits_model.open("rb") as f:
            model_id = c.post("/v1/models", files={"file": ("m.keras", f)}).json()["id"]
        # Stop the worker, submit, and lose the message (as a Redis restart without persistence would).
        worker = crashy.procs.pop()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        spec = {
            "model_id": model_id,
            "dataset_id": "builtin:digits",
            "target": {"sparsity": 0.3},
            "finetune": {"epochs": 0},
        }
        job_id = c.post("/v1/jobs", json=spec).json()["id"]
        for message in (crashy.root / "broker" / "queue").iterdir():
            message.unlink()
        crashy.start_worker()
        job = wait_for_job(c, job_id, timeout=240)
    assert job["status"] == "succeeded"
    assert job["attempts"] == 1
