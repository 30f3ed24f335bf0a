"""`shears serve` (what `make run` runs): the API and its worker start together and stop together."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, wait_for_job


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True).stdout.strip()
    return bool(state) and not state.startswith("Z")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_serve_runs_the_api_and_a_worker_and_stops_both(stop: signal.Signals, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "SHEARS_DATA_DIR": str(tmp_path)}
    serve = subprocess.Popen(
        [sys.executable, "-m", "shears.cli", "serve", "--port", str(port)],
        env=env,
        stdout=(tmp_path / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=2)
                metrics = httpx.get(f"{url}/metrics", timeout=5).text
                if ready.status_code == 200 and "shears_worker_heartbeat_age_seconds{" in metrics:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert ready is not None, (tmp_path / "serve.log").read_text()[-2000:]
        assert ready.status_code == 200, (tmp_path / "serve.log").read_text()[-2000:]
        assert "shears_worker_heartbeat_age_seconds{" in metrics  # its worker registered itself
        workers = _children(serve.pid)
        assert workers, "shears serve started no worker"

        serve.send_signal(stop)
        serve.wait(timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
            time.sleep(0.5)
        assert not any(_alive(pid) for pid in workers), "the worker outlived shears serve"
    finally:
        if serve.poll() is None:
            serve.kill()


def _start_serve(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "shears.cli", "serve", "--port", str(port), *args],
        env={**os.environ, "SHEARS_DATA_DIR": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "2", **env},
        stdout=(tmp_path / "serve.log").open("wb"),
        stderr=subprocess.STDOUT,
    )
    return serve, f"http://127.0.0.1:{port}"


def _wait_ready(url: str, serve: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.poll() is None, log.read_text()[-2000:]
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2)
            if ready.status_code in (200, 503):
                return ready
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(log.read_text()[-2000:])


def test_readyz_says_no_live_worker_when_no_worker_serves_the_job_queues(tmp_path: Path) -> None:
    serve, url = _start_serve(tmp_path, {}, "--no-worker")
    try:
        ready = _wait_ready(url, serve, tmp_path / "serve.log")
        assert ready.status_code == 503
        assert ready.json()["code"] == "no_live_worker"
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["worker"].startswith("no_live_worker")
    finally:
        serve.terminate()
        serve.wait(timeout=30)


def _worker_main(serve_pid: int) -> int | None:
    for pid in _children(serve_pid):
        if _alive(pid) and b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


def test_a_sigkilled_embedded_worker_is_reaped_restarted_and_its_job_resumes(
    tmp_path: Path, digits_model: Path
) -> None:
    """What the OOM killer does to a worker fine-tuning a large model: the job must still finish."""
    env = {"SHEARS_HEARTBEAT_S": "1", "SHEARS_STALE_AFTER_S": "4", "SHEARS_REQUEUE_AFTER_S": "3"}
    serve, url = _start_serve(tmp_path, env)
    log = tmp_path / "serve.log"
    try:
        deadline = time.monotonic() + 90
        while _wait_ready(url, serve, log).status_code != 200:
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.3)
        key = subprocess.run(
            [sys.executable, "-m", "shears.cli", "keys", "create", "--tenant", "t"],
            env={**os.environ, "SHEARS_DATA_DIR": str(tmp_path)},
            capture_output=True,
            check=True,
            text=True,
        ).stdout.strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
            with digits_model.open("rb") as f:
                model_id = c.post("/v1/models", files={"file": ("m.keras", f)}).json()["id"]
            spec = {
                "model_id": model_id,
                "dataset_id": "builtin:digits",
                "target": {"sparsity": 0.6},
                "schedule": {"kind": "polynomial", "steps": 2},
                "finetune": {"epochs": 2, "batch_size": 64},
            }
            job_id = c.post("/v1/jobs", json=spec).json()["id"]
            deadline = time.monotonic() + 120
            while not (
                list(tmp_path.glob(f"artifacts/*/jobs/{job_id}/checkpoint/state.json"))
                and c.get(f"/v1/jobs/{job_id}").json()["stage"] == "finetuning"
            ):
                assert time.monotonic() < deadline, c.get(f"/v1/jobs/{job_id}").json()
                time.sleep(0.1)
            first = _worker_main(serve.pid)
            assert first is not None
            os.kill(first, signal.SIGKILL)

            job = wait_for_job(c, job_id, timeout=120)
            assert job["status"] == "succeeded", (job, log.read_text()[-3000:])
            assert job["attempts"] == 2
            assert c.get(f"/v1/jobs/{job_id}/report").json()["resumed_from"]["step"] >= 1
        assert not _alive(first)  # reaped, not a zombie
        second = _worker_main(serve.pid)
        assert second is not None
        assert second != first
        text = log.read_text()
        assert f"embedded worker (pid {first}) killed by SIGKILL; restarting it" in text
    finally:
        serve.terminate()
        serve.wait(timeout=60)
