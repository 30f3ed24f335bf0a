"""Jobs survive dead workers and lost messages, and are never run twice at once."""

import os
import signal
import time
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


def test_a_worker_child_killed_during_finetuning_is_resumed(crashy: Service, digits_model: Path) -> None:
    with crashy.client(crashy.new_key()) as c:
        with digits_model.open("rb") as f:
            model_id = c.post("/v1/models", files={"file": ("m.keras", f)}).json()["id"]
        spec = {
            "model_id": model_id,
            "dataset_id": "builtin:digits",
            "target": {"sparsity": 0.5},
            "finetune": {"epochs": 4, "batch_size": 16},
        }
        job_id = c.post("/v1/jobs", json=spec).json()["id"]
        deadline = time.monotonic() + 120
        while c.get(f"/v1/jobs/{job_id}").json()["stage"] != "finetuning":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        engine = _engine_process(job_id)
        assert engine is not None
        pool_child = _parent(engine)
        os.kill(pool_child, signal.SIGKILL)
        time.sleep(1)
        # The engine process dies with the worker child that started it (a zombie has no cmdline).
        assert _engine_process(job_id) is None
        job = wait_for_job(c, job_id, timeout=300)
        assert job["status"] == "succeeded", job
        assert job["attempts"] == 2
        statuses = [e for e in read_events(c, job_id) if e["type"] == "status"]
        assert [e["data"]["status"] for e in statuses].count("succeeded") == 1
        assert c.get(f"/v1/jobs/{job_id}/model.tflite").status_code == 200
    (folder,) = (crashy.root / "artifacts").glob(f"*/jobs/{job_id}")
    assert sorted(p.name for p in folder.iterdir()) == ["model.keras", "model.tflite", "report.json"]


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
