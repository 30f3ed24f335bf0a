"""What operators see and steer: queues per kind of work, /metrics, and JSON logs that carry ids."""

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import Service, upload_model, wait_for_job


def _metric(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text format, or None when it is absent."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@pytest.fixture(scope="module")
def split_queues(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Prune jobs go to a `gpu` queue, profile jobs to `cpu`; the API runs with no worker."""
    env = {"SHEARS_QUEUE_PRUNE": "gpu", "SHEARS_QUEUE_PROFILE": "cpu", "SHEARS_LOG_FORMAT": "json"}
    service = Service(tmp_path_factory.mktemp("queues"), env).start(worker=False)
    yield service
    service.stop()


def test_each_kind_of_work_goes_to_its_queue_and_workers_serve_what_they_are_told(
    split_queues: Service, digits_model: Path
) -> None:
    service = split_queues
    cpu_log = service.start_worker("--queues", "cpu")
    with service.client(service.new_key()) as client:
        model = upload_model(client, digits_model)
        prune = client.post(
            "/v1/jobs",
            json={"model_id": model, "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}},
            headers={"X-Request-ID": "ci-run-42"},
        )
        assert prune.status_code == 202, prune.text
        assert prune.headers["X-Request-ID"] == "ci-run-42"
        profile = client.post("/v1/jobs", json={"model_id": model, "kind": "profile", "devices": ["host"]})
        assert profile.status_code == 202, profile.text
        assert re.fullmatch(r"req_[0-9a-f]{16}", profile.headers["X-Request-ID"])

        # The cpu worker runs the profile job and leaves the prune job waiting in the gpu queue.
        assert wait_for_job(client, profile.json()["id"], timeout=180)["status"] == "succeeded"
        assert client.get(f"/v1/jobs/{prune.json()['id']}").json()["status"] == "queued"
        metrics = client.get("/metrics").text
        assert _metric(metrics, "shears_queue_depth", queue="gpu") == 1
        assert _metric(metrics, "shears_queue_depth", queue="cpu") == 0
        assert _metric(metrics, "shears_jobs", status="queued") == 1
        assert _metric(metrics, "shears_jobs", status="succeeded") == 1

        gpu_log = service.start_worker("--queues", "gpu")
        job = wait_for_job(client, prune.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job

        metrics = client.get("/metrics").text
        assert _metric(metrics, "shears_queue_depth", queue="gpu") == 0
        assert _metric(metrics, "shears_jobs", status="succeeded") == 2
        workers = [line for line in metrics.splitlines() if line.startswith("shears_worker_heartbeat_age_seconds{")]
        assert {re.search(r'queues="([^"]*)"', line).group(1) for line in workers} == {"cpu", "gpu"}  # type: ignore[union-attr]
        assert all(float(line.rsplit(" ", 1)[1]) < 60 for line in workers)
        for stage in ("loading", "finetuning", "converting", "profiling"):
            # A gauge histogram over recent jobs: the prune job's stages (the profile job has none).
            assert _metric(metrics, "shears_stage_duration_seconds_gcount", stage=stage) == 1
            assert (_metric(metrics, "shears_stage_duration_seconds_gsum", stage=stage) or 0) > 0
            assert _metric(metrics, "shears_stage_duration_seconds_bucket", stage=stage, le="+Inf") == 1
        assert _metric(metrics, "shears_http_requests_total", route="/v1/jobs", method="POST", status="202") == 2
        assert _metric(metrics, "shears_http_request_seconds_count", route="/v1/jobs/{job_id}", method="GET")

    # A GPU worker runs one job at a time; a CPU worker keeps the configured concurrency.
    gpu_lines = _json_lines(gpu_log)
    cpu_lines = _json_lines(cpu_log)
    assert not any(line.get("job_id") == prune.json()["id"] for line in cpu_lines)
    # The submit's request id follows the job into the worker's log lines.
    mine = [line for line in gpu_lines if line.get("job_id") == prune.json()["id"]]
    assert mine, gpu_lines[-5:]
    assert {line.get("request_id") for line in mine} == {"ci-run-42"}
    assert any("succeeded" in line["message"] for line in mine)
    # And the API's own access lines are JSON with the same id.
    api_lines = _json_lines(service.root / "api.log")
    submit = [line for line in api_lines if line.get("request_id") == "ci-run-42" and line["logger"] == "shears.access"]
    assert [(line["route"], line["status"]) for line in submit] == [("/v1/jobs", 202)]


def _json_lines(path: Path) -> list[dict[str, object]]:
    """The JSON log lines of a process (other output, e.g. of TensorFlow, is skipped)."""
    deadline = time.monotonic() + 5
    while True:
        lines = []
        for raw in path.read_text().splitlines():
            if raw.startswith("{"):
                try:
                    lines.append(json.loads(raw))
                except json.JSONDecodeError:
                    continue
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.2)


def test_a_gpu_worker_runs_one_job_at_a_time(split_queues: Service) -> None:
    log = split_queues.start_worker("--queues", "gpu", "--concurrency", "4")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "concurrency" not in log.read_text():
        time.sleep(0.5)
    # Celery's banner names the pool size it actually runs.
    assert re.search(r"concurrency:\s*1 \(prefork\)", log.read_text()), log.read_text()[-2000:]


def test_only_an_engine_of_a_gpu_worker_sees_the_gpu_and_grows_its_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`shears worker` sets TF_FORCE_GPU_ALLOW_GROWTH when it serves a GPU queue; the engine's
    environment keeps that (and the GPU list) and nothing else of the worker's."""
    from workers.sandbox import engine_env

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("SHEARS_DATABASE_URL", "postgresql+psycopg://u:pw@db/shears")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.delenv("TF_FORCE_GPU_ALLOW_GROWTH", raising=False)
    cpu = engine_env(tmp_path)
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""
    assert "TF_FORCE_GPU_ALLOW_GROWTH" not in cpu

    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    gpu = engine_env(tmp_path)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "0"
    assert gpu["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    for env in (cpu, gpu):
        assert not {k for k in env if k.startswith(("AWS_", "SHEARS_DATABASE", "SHEARS_BROKER", "SHEARS_STORAGE"))}
        assert env["HOME"] == env["TMPDIR"] == str(tmp_path)


def test_the_worker_command_turns_a_gpu_queue_into_one_job_at_a_time_and_memory_growth(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from click.testing import CliRunner

    import workers.celery_app
    from app.settings import get_settings
    from shears.cli import main

    seen: dict[str, object] = {}
    monkeypatch.setattr(workers.celery_app.celery_app, "worker_main", lambda argv: seen.update(argv=argv))
    saved = dict(os.environ)  # the command sets variables for the worker's own process
    for name in ("TF_FORCE_GPU_ALLOW_GROWTH", "CUDA_VISIBLE_DEVICES", "SHEARS_WORKER_QUEUES"):
        os.environ.pop(name, None)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["worker", "--queues", "gpu", "--concurrency", "3"])
        assert result.exit_code == 0, result.output
        assert "--concurrency=1" in seen["argv"]  # type: ignore[operator]
        assert "--queues=gpu" in seen["argv"]  # type: ignore[operator]
        assert os.environ["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"

        del os.environ["TF_FORCE_GPU_ALLOW_GROWTH"]
        result = CliRunner().invoke(main, ["worker", "--queues", "cpu,shears", "--concurrency", "3"])
        assert result.exit_code == 0, result.output
        assert "--concurrency=3" in seen["argv"]  # type: ignore[operator]
        assert "--queues=cpu,shears" in seen["argv"]  # type: ignore[operator]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
        assert "TF_FORCE_GPU_ALLOW_GROWTH" not in os.environ
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def test_a_bug_is_a_json_500_with_the_request_id_and_counted() -> None:
    from fastapi.testclient import TestClient

    from app.api.main import create_app

    app = create_app()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "bug-1"})
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "internal_error"
        assert "a bug" not in response.text  # the details go to the log, not to the caller
        assert response.headers["X-Request-ID"] == "bug-1"
        metrics = client.get("/metrics").text
        assert (_metric(metrics, "shears_http_requests_total", route="/boom", status="500") or 0) >= 1


def test_values_the_database_cannot_store_are_422_not_500(production: Service, digits_model: Path) -> None:
    with production.client(production.new_key()) as client:
        model = upload_model(client, digits_model)
        for body in (
            f'{{"model_id": "{model}", "dataset_id": "builtin:digits", "kind": "sweep", '
            '"sweep": {"sparsities": [0.5], "budget_ms": 1e999}}',
            f'{{"model_id": "{model}", "dataset_id": "builtin:digits", "granularity": "channel", '
            '"target": {"latency_ms": NaN, "device": "host"}}',
        ):
            response = client.post("/v1/jobs", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 422, response.text
        listed = client.get("/v1/jobs", params={"parent_id": "job_\x00"})
        assert listed.status_code in (200, 422), listed.text
        assert client.get("/v1/jobs/job_%00").status_code in (404, 422)
