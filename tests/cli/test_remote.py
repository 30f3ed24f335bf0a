"""`shears remote` and the examples, run as a CI machine runs them: subprocesses against a live server."""

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Cli, _default_sigint
from tests.services import wait_for_job

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
STAGES = ("queued", "loading", "scoring", "pruning", "finetuning", "converting", "profiling", "succeeded")
PROGRESS_LINE = re.compile(r"^(job_\S+)\s+(\w+)\s+(\d+)%$")


@pytest.fixture(scope="module")
def finished(cli: Cli, digits_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One `submit --wait` of a local .keras path, shared by the tests that look at its parts."""
    work = tmp_path_factory.mktemp("submit")
    out = cli(
        "submit", "--model", str(digits_model), "--data", "builtin:digits", "--sparsity", "0.5", "--epochs", "1",
        "--wait", "--timeout", "3m", "--poll-interval", "0.2", "-o", "pruned.tflite", "--report", "r.json",
        "--max-size-kb", "100000", "--max-accuracy-drop", "0.5", "--max-latency-ms", "1000", "--device", "host",
        cwd=work,
    )  # fmt: skip
    job_id = re.search(r"submitted (job_\S+)", out.stderr)
    model_id = re.search(r"uploaded \S+ as (mdl_\S+)", out.stderr)
    return {
        "out": out,
        "work": work,
        "job_id": job_id.group(1) if job_id else None,
        "model_id": model_id.group(1) if model_id else None,
    }


@pytest.fixture(scope="module")
def model_id(finished: dict[str, Any]) -> str:
    """The digits model, uploaded by `submit --model <path>` (each upload loads the model: ~10 s)."""
    assert finished["model_id"], finished["out"].stderr
    return str(finished["model_id"])


def test_upload_prints_the_model_record(uploaded_four: dict[str, Any]) -> None:
    assert uploaded_four["id"].startswith("mdl_")
    assert uploaded_four["format"] == "keras"
    assert uploaded_four["input_shape"] == [None, 8, 8, 1]
    assert uploaded_four["output_shape"] == [None, 4]


def test_datasets_upload(cli: Cli, tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, 40)
    np.savez(tmp_path / "data.npz", x_train=x[:30], y_train=y[:30], x_val=x[30:], y_val=y[30:])
    out = cli("datasets", "upload", str(tmp_path / "data.npz"))
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["id"].startswith("ds_")
    assert record["task"] == "classification"
    quiet = cli("datasets", "upload", "-q", str(tmp_path / "data.npz"))
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.strip().startswith("ds_")


def test_submit_wait_uploads_prunes_and_downloads(finished: dict[str, Any]) -> None:
    out, work = finished["out"], finished["work"]
    assert out.returncode == 0, out.stdout + out.stderr
    assert "uploaded" in out.stderr
    tflite = work / "pruned.tflite"
    assert tflite.stat().st_size > 0
    assert tflite.read_bytes()[4:8] == b"TFL3"
    report = json.loads((work / "r.json").read_text())
    assert report["sparsity"]["overall"] == pytest.approx(0.5, abs=0.01)
    assert report["size"]["tflite_bytes"] == tflite.stat().st_size
    assert f"{finished['job_id']} succeeded" in out.stdout
    for words in ("accuracy", "sparsity   0.5", "size", "latency    host", "pruned.tflite", "r.json"):
        assert words in out.stdout, out.stdout
    assert not list(work.glob("*.part"))


def test_progress_in_ci_logs_is_plain_lines_with_stage_names(finished: dict[str, Any]) -> None:
    out = finished["out"]
    assert "\r" not in out.stderr
    lines = [PROGRESS_LINE.match(line) for line in out.stderr.splitlines()]
    progress = [(m.group(2), int(m.group(3))) for m in lines if m]
    stages = {stage for stage, _ in progress}
    assert stages >= {"loading", "succeeded"}, out.stderr
    assert len(stages - {"queued", "loading", "succeeded"}) >= 1, out.stderr  # scoring, finetuning, ...
    assert all(stage in STAGES for stage, _ in progress)
    assert len(progress) == len(set(progress)), "a line is printed only when the stage or percent changes"
    assert progress[-1] == ("succeeded", 100)


def test_status_and_download(cli: Cli, finished: dict[str, Any], tmp_path: Path) -> None:
    job_id = finished["job_id"]
    status = cli("status", job_id)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["status"] == "succeeded"

    got = cli("download", job_id, "-o", "again.tflite", "--report", "again.json", cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "again.tflite").read_bytes() == (finished["work"] / "pruned.tflite").read_bytes()
    assert json.loads((tmp_path / "again.json").read_text()) == json.loads((finished["work"] / "r.json").read_text())
    default = cli("download", job_id, cwd=tmp_path)
    assert default.returncode == 0, default.stderr
    assert (tmp_path / f"{job_id}.tflite").stat().st_size > 0


def test_errors_of_the_server_exit_1_with_its_message(cli: Cli, finished: dict[str, Any]) -> None:
    missing = cli("status", "job_doesnotexist")
    assert missing.returncode == 1
    assert "HTTP 404 not_found" in missing.stderr
    finished_already = cli("cancel", finished["job_id"])
    assert finished_already.returncode == 1
    assert "job_finished" in finished_already.stderr
    bad_key = subprocess.run(
        cli.argv("--api-key", "nope", "status", finished["job_id"]),
        env=cli.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_key.returncode == 1
    assert "HTTP 401" in bad_key.stderr


def test_bad_spec_field_is_a_4xx_with_the_servers_message(cli: Cli, model_id: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"target": {"sparsity": 0.5}, "colour": "red"}))
    out = cli("submit", "--model", model_id, "--data", "builtin:digits", "--spec", str(spec), "--wait")
    assert out.returncode == 1, out.stdout + out.stderr
    assert "HTTP 422 invalid_request" in out.stderr
    assert "colour" in out.stderr
    assert "Extra inputs are not permitted" in out.stderr


def test_usage_errors_exit_1_not_2(cli: Cli, model_id: str) -> None:
    out = cli("submit", "--model", model_id, "--data", "builtin:digits", "--timeout", "soon", "--wait")
    assert out.returncode == 1
    assert "not a duration" in out.stderr
    out = cli("submit", "--model", model_id, "--data", "builtin:digits", "--max-size-kb", "5")
    assert out.returncode == 1
    assert "need --wait" in out.stderr
    out = cli("submit", "--model", "missing/model.keras", "--data", "builtin:digits")
    assert out.returncode == 1
    assert "no such file" in out.stderr


def test_submit_without_wait_spec_file_under_flags_and_cancel(cli: Cli, model_id: str, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"target": {"sparsity": 0.9}, "finetune": {"epochs": 7, "batch_size": 32}}))
    out = cli("submit", "--model", model_id, "--data", "builtin:digits", "--spec", str(spec), "--sparsity", "0.3",
              "--epochs", "0", "--schedule", "polynomial", "--steps", "2", "--seed", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    job_id = out.stdout.strip()
    assert re.fullmatch(r"job_\S+", job_id), out.stdout
    cancelled = cli("cancel", job_id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert re.match(rf"{job_id} (cancelled|running \(cancel requested\))", cancelled.stdout), cancelled.stdout
    with cli.client() as client:
        job = wait_for_job(client, job_id, timeout=120)
    assert job["status"] == "cancelled"
    assert job["spec"]["target"] == {"sparsity": 0.3}
    assert job["spec"]["finetune"] == {"epochs": 0, "batch_size": 32}
    assert job["spec"]["schedule"] == {"kind": "polynomial", "steps": 2}
    assert job["spec"]["seed"] == 3


def test_devices(cli: Cli) -> None:
    devices = cli("devices")
    assert devices.returncode == 0, devices.stderr
    assert devices.stdout.split()[0] == "host"
    as_json = cli("devices", "--json")
    names = [d["name"] for d in json.loads(as_json.stdout)]
    assert names[0] == "host"
    assert {"cortex-m4f-120mhz", "cortex-a53-1200mhz", "cortex-a76-2400mhz"} <= set(names)


def test_a_missed_budget_exits_5_and_says_which_and_by_how_much(cli: Cli, model_id: str, tmp_path: Path) -> None:
    out = cli("submit", "--model", model_id, "--data", "builtin:digits", "--sparsity", "0.5", "--epochs", "0",
              "--wait", "--poll-interval", "0.2", "--max-size-kb", "1", "--max-latency-ms", "1000",
              cwd=tmp_path)  # fmt: skip
    assert out.returncode == 5, out.stdout + out.stderr
    assert "budget missed (1)" in out.stderr
    miss = next(line for line in out.stderr.splitlines() if "size:" in line)
    assert "budget 1 KB" in miss
    assert "over by" in miss
    assert "latency" not in out.stderr.split("budget missed")[1]  # a met budget is not a miss
    assert len(list(tmp_path.glob("job_*.tflite"))) == 1  # the results are still downloaded


def test_a_failed_job_exits_2_with_its_error_code(cli: Cli, uploaded_four: dict[str, Any], tmp_path: Path) -> None:
    out = cli("submit", "--model", uploaded_four["id"], "--data", "builtin:digits", "--sparsity", "0.5",
              "--epochs", "0", "--wait", "--poll-interval", "0.2", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2, out.stdout + out.stderr
    assert "failed: data_mismatch" in out.stderr
    assert "4 outputs" in out.stderr
    assert not list(tmp_path.glob("*.tflite"))


def test_timeout_exits_4_and_a_regression_guard_is_sent_in_its_units(cli: Cli, model_id: str, tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 8, 8, 1), dtype=np.float32), rng.random(40, dtype=np.float32)
    np.savez(tmp_path / "reg.npz", x_train=x[:30], y_train=y[:30], x_val=x[30:], y_val=y[30:])
    out = cli("submit", "--model", model_id, "--data", str(tmp_path / "reg.npz"), "--sparsity", "0.5",
              "--epochs", "0", "--max-accuracy-drop", "0.1", "--wait", "--timeout", "1s", "--poll-interval", "0.2",
              cwd=tmp_path)  # fmt: skip
    assert out.returncode == 4, out.stdout + out.stderr
    assert "timed out after 1 s" in out.stderr
    assert "keeps running" in out.stderr
    job_id = re.search(r"submitted (job_\S+)", out.stderr).group(1)  # type: ignore[union-attr]
    with cli.client() as client:
        client.post(f"/v1/jobs/{job_id}/cancel")
        job = wait_for_job(client, job_id, timeout=120)
    assert job["spec"]["max_error_increase"] == 0.1
    assert "max_accuracy_drop" not in job["spec"]


def test_a_cancelled_job_exits_3(cli: Cli, long_job_args: list[str]) -> None:
    proc = subprocess.Popen(cli.argv(*long_job_args), env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen = _read_until(proc.stderr, r"submitted job_\S+\n", 60)
        job_id = re.search(r"submitted (job_\S+)", seen).group(1)  # type: ignore[union-attr]
        assert cli("cancel", job_id).returncode == 0
        _, rest = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 3, seen + rest.decode()
    assert f"job {job_id} was cancelled" in rest.decode()


def _read_until(stream: Any, pattern: str, timeout: float) -> str:
    """Read a pipe or pty until `pattern` shows up; returns all that was read."""
    fd = stream if isinstance(stream, int) else stream.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while re.search(pattern, seen.decode(errors="replace")) is None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {pattern!r} in {seen.decode(errors='replace')!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the pty closed
                chunk = b""
            if not chunk:
                raise AssertionError(f"closed before {pattern!r}: {seen.decode(errors='replace')!r}")
            seen += chunk
    return seen.decode(errors="replace")


@pytest.fixture
def long_job_args(model_id: str) -> list[str]:
    return ["submit", "--model", model_id, "--data", "builtin:digits", "--sparsity", "0.5", "--epochs", "50",
            "--wait", "--poll-interval", "0.2"]  # fmt: skip


def test_ctrl_c_without_a_terminal_does_not_cancel(cli: Cli, long_job_args: list[str]) -> None:
    proc = subprocess.Popen(
        cli.argv(*long_job_args),
        env=cli.env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_default_sigint,
    )
    try:
        seen = _read_until(proc.stderr, r"job_\S+\s+(queued|loading|scoring|pruning|finetuning)", 60)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=30)
    finally:
        proc.kill()
    stderr = seen + rest.decode()
    assert proc.returncode == 130, stderr
    assert "was NOT cancelled" in stderr
    job_id = re.search(r"submitted (job_\S+)", stderr).group(1)  # type: ignore[union-attr]
    with cli.client() as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["cancel_requested"] is False
        assert cli("cancel", job_id).returncode == 0
        assert wait_for_job(client, job_id, timeout=120)["status"] == "cancelled"


def test_ctrl_c_on_a_terminal_asks_and_cancels(cli: Cli, long_job_args: list[str]) -> None:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen(
        cli.argv(*long_job_args),
        env={**cli.env, "TERM": "dumb"},
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
        preexec_fn=_default_sigint,
    )
    os.close(slave)
    try:
        seen = _read_until(master, r"\rjob_\S+\s+(queued|loading|scoring|pruning|finetuning)\s+\d+%", 60)
        proc.send_signal(signal.SIGINT)
        seen += _read_until(master, r"Cancel job job_\S+\? \[y/N\]", 30)
        os.write(master, b"y\n")
        seen += _read_until(master, r"cancel requested", 30)
        proc.wait(timeout=30)
    finally:
        proc.kill()
        os.close(master)
    assert proc.returncode == 130, seen
    job_id = re.search(r"submitted (job_\S+)", seen).group(1)  # type: ignore[union-attr]
    updating = seen[seen.index("\rjob_") : seen.index("Cancel job")].strip()
    assert "\n" not in updating, f"one updating line on a terminal: {updating!r}"
    with cli.client() as client:
        assert wait_for_job(client, job_id, timeout=120)["status"] == "cancelled"


# The examples ------------------------------------------------------------------------------


def test_the_client_imports_no_engine_and_no_server_code() -> None:
    code = (
        "import sys, shears.cli, shears_client.commands, shears_client.submit; "
        "heavy = ('tensorflow', 'keras', 'app', 'pruning', 'workers'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_submit_wait_on_a_sweep_picks_the_most_accurate_point_within_the_budgets(
    cli: Cli, model_id: str, tmp_path: Path
) -> None:
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps({"kind": "sweep", "granularity": "channel", "sweep": {"sparsities": [0.25, 0.85]}}))
    # One idempotency key for the three submits: the server runs the sweep once, and the second and third
    # (a pipeline step run again with other budgets) follow that sweep and judge it by their own budgets.
    common = ["submit", "--model", model_id, "--data", "builtin:digits", "--spec", str(spec), "--epochs", "0",
              "--wait", "--poll-interval", "0.2", "--timeout", "5m",
              "--idempotency-key", f"sweep-{uuid.uuid4()}"]  # fmt: skip

    # No budget: the most accurate point, with the sweep's report (every point, the Pareto set).
    free = cli(*common, "-o", "free.tflite", "--report", "sweep-report.json", cwd=tmp_path, timeout=400)
    assert free.returncode == 0, free.stdout + free.stderr
    sweep = json.loads((tmp_path / "sweep-report.json").read_text())
    assert sweep["kind"] == "sweep"
    assert len(sweep["points"]) == 2
    best = max(sweep["points"], key=lambda p: p["accuracy"])
    assert f"picked {best['job_id']}" in free.stderr
    with cli.client() as client:
        assert (tmp_path / "free.tflite").read_bytes() == client.get(f"/v1/jobs/{best['job_id']}/model.tflite").content

    # A size budget only the smaller point meets: that one is picked.
    small, large = sorted(sweep["points"], key=lambda p: p["tflite_bytes"])
    between_kb = (small["tflite_bytes"] + large["tflite_bytes"]) / 2 / 1024
    tight = cli(*common, "-o", "tight.tflite", "--max-size-kb", f"{between_kb:.3f}", cwd=tmp_path, timeout=400)
    assert tight.returncode == 0, tight.stdout + tight.stderr
    assert (tmp_path / "tight.tflite").stat().st_size <= between_kb * 1024
    assert "picked" in tight.stderr

    # No point meets it: exit 5 with the misses of the most accurate point, nothing downloaded.
    none = cli(*common, "-o", "none.tflite", "--max-size-kb", "0.01", cwd=tmp_path, timeout=400)
    assert none.returncode == 5, none.stdout + none.stderr
    assert "budget missed (1)" in none.stderr
    assert not (tmp_path / "none.tflite").exists()
    submitted = {
        line for run in (free, tight, none) for line in run.stderr.splitlines() if line.startswith("submitted")
    }
    assert len(submitted) == 1, submitted
    # The key with another spec: refused, nothing submitted.
    other = cli(*common[:-7], "--seed", "7", "--idempotency-key", common[-1], cwd=tmp_path, timeout=60)
    assert other.returncode != 0
    assert "already used with a different request" in other.stderr, other.stderr
