"""`SHEARS_SANDBOX=strict` on a host without the namespaces level: upload checks answer 503 with a
code, and a worker refuses to start (so to take jobs); both processes are non-dumpable."""

import os
import subprocess
import sys
from pathlib import Path

from tests.services import Service


def test_strict_without_bubblewrap_refuses_upload_checks_with_a_503(tmp_path: Path, digits_model: Path) -> None:
    # No bwrap on this PATH: the launcher sees a host without it.
    service = Service(tmp_path, {"SHEARS_SANDBOX": "strict", "PATH": str(tmp_path)}).start(worker=False)
    try:
        with service.client(service.new_key()) as c, digits_model.open("rb") as f:
            response = c.post("/v1/models", files={"file": ("m.keras", f)})
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "sandbox_unavailable"
        assert "strict" in error["message"]
        api = service.procs[0].pid
        # PR_SET_DUMPABLE 0 hands /proc/PID to root; reading its environ needs CAP_SYS_PTRACE then.
        assert os.stat(f"/proc/{api}/environ").st_uid == 0
    finally:
        service.stop()


def test_strict_without_bubblewrap_a_worker_refuses_to_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shears.cli", "worker"],
        env={**os.environ, "SHEARS_DATA_DIR": str(tmp_path), "SHEARS_SANDBOX": "strict", "PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 78, done.stderr[-2000:]
    assert "sandbox level seccomp" in done.stderr or "sandbox level landlock" in done.stderr
    assert "refusing to run jobs" in done.stderr
