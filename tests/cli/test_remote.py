"""`shears remote` and the examples, run as a CI machine runs them: subprocesses against a live server."""

import io
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from shears import remote
from tests.services import Service, wait_for_job

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
STAGES = ("queued", "loading", "scoring", "pruning", "finetuning", "converting", "profiling", "succeeded")
PROGRESS_LINE = re.compile(r"^(job_\S+)\s+(\w+)\s+(\d+)%$")


def _default_sigint() -> None:
    # A child of a background shell may inherit SIGINT ignored; Ctrl-C must reach the client.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Cli:
    def __init__(self, service: Service, key: str) -> None:
        self.service, self.key = service, key
        self.env = {**os.environ, "SHEARS_URL": service.url, "SHEARS_API_KEY": key}
        self.env = {k: v for k, v in self.env.items() if k != "SHEARS_DATA_DIR"}  # a client-only machine

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "shears.cli", "remote", *args]

    def __call__(self, *args: str, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), env=self.env, cwd=cwd, capture_output=True, text=True, timeout=timeout)

    def client(self) -> httpx.Client:
        return self.service.client(self.key)


@pytest.fixture(scope="module")
def cli(embedded: Service) -> Cli:
    return Cli(embedded, embedded.new_key())


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


@pytest.fixture(scope="module")
def four_class_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Takes 8x8 digits but has 4 outputs: its jobs fail in the worker with data_mismatch."""
    import keras

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    path = tmp_path_factory.mktemp("four") / "four.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def uploaded_four(cli: Cli, four_class_model: Path) -> dict[str, Any]:
    out = cli("upload", str(four_class_model))
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


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


@pytest.fixture
def jq() -> str:
    path = shutil.which("jq")
    if path is None:
        pytest.skip("jq is not installed; examples/pipeline.sh needs curl and jq")
    return path


def test_pipeline_script(cli: Cli, digits_model: Path, uploaded_four: dict[str, Any], tmp_path: Path, jq: str) -> None:
    assert shutil.which("curl"), "curl is needed for examples/pipeline.sh"

    def run(cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
        cwd.mkdir()
        return subprocess.run(
            ["bash", str(EXAMPLES / "pipeline.sh")],
            env={**cli.env, "EPOCHS": "0", "POLL_S": "0.3", **env},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=240,
        )

    # Upload, submit, poll, download; the budget is met: the build passes.
    ok = run(tmp_path / "ok", MODEL=str(digits_model), MAX_SIZE_KB="100000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert re.search(r"^job job_\S+ running (loading|scoring|pruning) \d+%$", ok.stdout, re.MULTILINE), ok.stdout
    assert re.search(r"^job job_\S+ succeeded profiling 100%$", ok.stdout, re.MULTILINE), ok.stdout
    assert "size budget met" in ok.stdout
    tflite = tmp_path / "ok" / "pruned.tflite"
    report = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert report["size"]["tflite_bytes"] == tflite.stat().st_size > 0

    # The same model (by id, no second upload) against a budget it cannot meet: the build fails.
    model_id = re.search(r"-> (mdl_\S+)", ok.stdout).group(1)  # type: ignore[union-attr]
    missed = run(tmp_path / "missed", MODEL_ID=model_id, MAX_SIZE_KB="1")
    assert missed.returncode == 5, missed.stdout + missed.stderr
    assert "budget missed: size" in missed.stderr
    assert "budget 1 KB" in missed.stderr
    assert (tmp_path / "missed" / "pruned.tflite").stat().st_size > 0

    # A job that fails: the build fails with the job's error.
    failed = run(tmp_path / "failed", MODEL_ID=uploaded_four["id"], MAX_SIZE_KB="100000")
    assert failed.returncode == 2, failed.stdout + failed.stderr
    assert re.search(r"job job_\S+ failed: data_mismatch: ", failed.stderr), failed.stderr
    assert not (tmp_path / "failed" / "pruned.tflite").exists()


def test_pipeline_script_fails_the_build_on_a_refused_request(cli: Cli, tmp_path: Path, jq: str) -> None:
    (tmp_path / "model.keras").write_bytes(b"not a model")
    env = {**cli.env, "MODEL": str(tmp_path / "model.keras")}
    out = subprocess.run(
        ["bash", str(EXAMPLES / "pipeline.sh")], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"POST /v1/models: HTTP 4\d\d \w+: ", out.stderr), out.stderr


def _ci_command() -> list[str]:
    text = (EXAMPLES / "ci-workflow.yml").read_text()
    try:
        import yaml
    except ImportError:  # the text below is what runs; parsing only double-checks the file
        yaml = None
    if yaml is not None:
        steps = yaml.safe_load(text)["jobs"]["prune"]["steps"]
        text = next(step["run"] for step in steps if "shears remote submit" in step.get("run", ""))
    start = text.index("shears remote submit")
    lines = []
    for line in text[start:].splitlines():
        lines.append(line.strip())
        if not line.rstrip().endswith("\\"):
            break
    import shlex

    return shlex.split(" ".join(line.rstrip("\\") for line in lines))


def test_ci_workflow_command_runs(cli: Cli, digits_model: Path, tmp_path: Path) -> None:
    argv = _ci_command()
    assert argv[:3] == ["shears", "remote", "submit"]
    assert "--wait" in argv
    assert {"--max-size-kb", "--max-accuracy-drop", "--max-latency-ms", "--device"} <= set(argv)
    # The file the snippet names, in a checkout of the user's repository (the server has these
    # bytes already from the tests above, so the upload answers with the stored model).
    model = tmp_path / argv[argv.index("--model") + 1]
    model.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(digits_model, model)
    out = cli(*argv[2:], "--poll-interval", "0.2", cwd=tmp_path, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (tmp_path / argv[argv.index("-o") + 1]).stat().st_size > 0
    assert json.loads((tmp_path / argv[argv.index("--report") + 1]).read_text())["accuracy"]["after"] > 0.5


def test_the_client_imports_no_engine_and_no_server_code() -> None:
    code = (
        "import sys, shears.cli, shears.remote; "
        "heavy = ('tensorflow', 'keras', 'app', 'pruning', 'workers'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# The parts that need no server -------------------------------------------------------------

REPORT = {
    "accuracy": {"before": 0.97, "after": 0.95, "metric": "accuracy"},
    "size": {"tflite_bytes": 20480},
    "latency": [{"device": "host", "measured_ms": 0.5}, {"device": "phone", "measured_ms": 9.0, "estimate_ms": 3.0}],
}


def test_budgets() -> None:
    assert remote.check_budgets(REPORT, max_latency_ms=1, max_size_kb=20, max_accuracy_drop=0.02) == []
    (miss,) = remote.check_budgets(REPORT, max_latency_ms=0.25)
    assert miss == "latency on host: 0.5 ms (measured), budget 0.25 ms, over by 0.25 ms"
    assert remote.check_budgets(REPORT, max_latency_ms=4, devices=["phone"]) == []  # the estimate counts
    (absent,) = remote.check_budgets(REPORT, max_latency_ms=4, devices=["cortex-a53-1200mhz"])
    assert "cortex-a53-1200mhz" in absent
    assert "no figure" in absent
    assert "host, phone" in absent
    (size,) = remote.check_budgets(REPORT, max_size_kb=15)
    assert size == "size: 20.0 KB (20480 bytes), budget 15 KB, over by 5.0 KB"
    (drop,) = remote.check_budgets(REPORT, max_accuracy_drop=0.01)
    assert drop.startswith("accuracy drop (accuracy): 0.02 (0.97 -> 0.95), budget 0.01, over by 0.01")
    mae = {"accuracy": {"before": 1.0, "after": 1.5, "metric": "mae"}}
    (worse,) = remote.check_budgets(mae, max_accuracy_drop=0.2)
    assert worse.startswith("error increase (mae): 0.5")
    assert remote.check_budgets({"accuracy": {"before": 1.5, "after": 1.0, "metric": "mae"}}, max_accuracy_drop=0) == []


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1h", 3600), ("1h30m", 5400), ("1.5m", 90)]
)
def test_durations(text: str, seconds: float) -> None:
    assert remote.Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize("text", ["", "soon", "30x", "m", "1h30", "0s"])
def test_bad_durations(text: str) -> None:
    import click

    with pytest.raises(click.BadParameter):
        remote.Duration().convert(text, None, None)


def _api(handler: Any, sleeps: list[float]) -> remote.Api:
    return remote.Api("http://shears.test", "k", transport=httpx.MockTransport(handler), sleep=sleeps.append)


def test_retries_with_backoff_and_retry_after_and_one_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused", request=request)
        if len(seen) == 2:
            return httpx.Response(503, headers={"Retry-After": "7"})
        if len(seen) == 3:
            return httpx.Response(502)
        return httpx.Response(202, json={"id": "job_1"})

    sleeps: list[float] = []
    assert _api(handler, sleeps).post_json("/v1/jobs", {"a": 1}) == {"id": "job_1"}
    assert sleeps == [0.5, 7.0, 2.0]
    keys = {r.headers["Idempotency-Key"] for r in seen}
    assert len(keys) == 1
    assert all(r.headers["Authorization"] == "Bearer k" for r in seen)


def test_gives_up_after_five_tries_and_never_retries_a_4xx() -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    sleeps: list[float] = []
    with pytest.raises(remote.Unreachable) as unreachable:
        _api(down, sleeps).get_json("/v1/jobs/x")
    assert sleeps == [0.5, 1.0, 2.0, 4.0]
    assert unreachable.value.exit_code == remote.EXIT_UNREACHABLE

    calls: list[int] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(409, json={"error": {"code": "job_finished", "message": "job x has already succeeded"}})

    with pytest.raises(remote.Refused) as refused:
        _api(refuse, []).post_json("/v1/jobs/x/cancel")
    assert calls == [1]
    assert refused.value.exit_code == 1
    assert refused.value.message == "POST /v1/jobs/x/cancel: HTTP 409 job_finished: job x has already succeeded"


def test_a_download_is_checked_against_its_sha256(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"abc", headers={"X-Content-SHA256": "0" * 64})

    with pytest.raises(remote.Unreachable, match="sha256"):
        _api(handler, []).download("/v1/jobs/x/model.tflite", tmp_path / "m.tflite")
    assert not list(tmp_path.iterdir())


def test_submit_wait_on_a_sweep_picks_the_most_accurate_point_within_the_budgets(
    cli: Cli, model_id: str, tmp_path: Path
) -> None:
    spec = tmp_path / "sweep.json"
    spec.write_text(json.dumps({"kind": "sweep", "granularity": "channel", "sweep": {"sparsities": [0.25, 0.85]}}))
    common = ["submit", "--model", model_id, "--data", "builtin:digits", "--spec", str(spec), "--epochs", "0",
              "--wait", "--poll-interval", "0.2", "--timeout", "5m"]  # fmt: skip

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


def test_datasets_upload_resumable_with_options(cli: Cli, tmp_path: Path) -> None:
    import zipfile

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    with zipfile.ZipFile(tmp_path / "img.zip", "w") as z:
        for label in ("a", "b"):
            for i in range(6):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(buffer, "PNG")
                z.writestr(f"{label}/{i}.png", buffer.getvalue())
    out = cli("datasets", "upload", "--resumable", "--options", '{"image_size": [8, 8]}', str(tmp_path / "img.zip"))
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["format"] == "images"
    assert record["summary"]["shape"] == [8, 8, 3]
    bad = cli("datasets", "upload", "--options", "{", str(tmp_path / "img.zip"))
    assert bad.returncode == 1


def test_delete_commands_and_usage(embedded: Service, four_class_model: Path, tmp_path: Path) -> None:
    cli = Cli(embedded, embedded.new_key())  # a tenant of its own: the deletes touch no other test's rows
    model_id = json.loads(cli("upload", str(four_class_model)).stdout)["id"]
    usage = cli("usage", "--json")
    assert usage.returncode == 0, usage.stderr
    assert json.loads(usage.stdout)["models"] == 1
    text = cli("usage")
    assert "models    1" in text.stdout, text.stdout
    assert "retention off" in text.stdout
    out = cli("models", "delete", model_id)
    assert out.returncode == 0, out.stderr
    assert f"{model_id} deleted" in out.stdout
    again = cli("models", "delete", model_id)
    assert again.returncode == remote.EXIT_REQUEST
    assert "404 not_found" in again.stderr
    for group, row_id in (("jobs", "job_nope"), ("datasets", "ds_nope")):
        gone = cli(group, "delete", row_id)
        assert gone.returncode == remote.EXIT_REQUEST, gone.stderr
        assert "404 not_found" in gone.stderr
    assert json.loads(cli("usage", "--json").stdout)["models"] == 0
