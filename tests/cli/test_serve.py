"""`shears serve` (what `make run` runs): the API and its worker start together and stop together."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port


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
