"""What build pipelines rely on: idempotent retries, dedupe, pagination, quotas, live events,
signed webhooks and cancel - each through a running server and worker."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.webhooks import verify
from tests.api.test_auth_and_tenancy import _assert_error
from tests.services import Service, free_port, read_events, wait_for_job


def _upload(c: httpx.Client, path: Path, **headers: str) -> httpx.Response:
    with path.open("rb") as f:
        return c.post("/v1/models", files={"file": ("m.keras", f)}, headers=headers)


def _spec(model_id: str, **changes: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "model_id": model_id,
        "dataset_id": "builtin:digits",
        "target": {"sparsity": 0.3},
        "finetune": {"epochs": 0},
    }
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def tenant(embedded: Service, digits_model: Path) -> tuple[str, str]:
    key = embedded.new_key()
    with embedded.client(key) as c:
        return key, str(_upload(c, digits_model).json()["id"])


def test_same_bytes_twice_return_the_existing_model(
    embedded: Service, tenant: tuple[str, str], digits_model: Path
) -> None:
    key, model_id = tenant
    with embedded.client(key) as c:
        again = _upload(c, digits_model)
        assert again.status_code == 200
        assert again.json()["id"] == model_id
        assert [m["id"] for m in c.get("/v1/models").json()["items"]] == [model_id]


def test_idempotent_job_submission(embedded: Service, tenant: tuple[str, str]) -> None:
    key, model_id = tenant
    with embedded.client(key) as c:
        first = c.post("/v1/jobs", json=_spec(model_id), headers={"Idempotency-Key": "build-42"})
        retry = c.post("/v1/jobs", json=_spec(model_id), headers={"Idempotency-Key": "build-42"})
        assert first.status_code == retry.status_code == 202
        assert retry.json() == first.json()
        other = c.post("/v1/jobs", json=_spec(model_id, seed=1), headers={"Idempotency-Key": "build-42"})
        _assert_error(other, 409, "idempotency_key_reused")
        ids = [j["id"] for j in c.get("/v1/jobs").json()["items"]]
        assert ids.count(first.json()["id"]) == 1
        assert len(ids) == 1
        wait_for_job(c, first.json()["id"])


def test_idempotent_upload(embedded: Service, tmp_path: Path) -> None:
    import keras

    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(tmp_path / "small.keras")
    with embedded.client(embedded.new_key()) as c:
        first = _upload(c, tmp_path / "small.keras", **{"Idempotency-Key": "up-1"})
        retry = _upload(c, tmp_path / "small.keras", **{"Idempotency-Key": "up-1"})
        assert first.status_code == retry.status_code == 201
        assert retry.json() == first.json()
        (tmp_path / "other.keras").write_bytes(b"PK\x03\x04 not the same bytes")
        _assert_error(_upload(c, tmp_path / "other.keras", **{"Idempotency-Key": "up-1"}), 409)


def test_lists_paginate_with_a_cursor_and_filter_by_status(embedded: Service, digits_model: Path) -> None:
    with embedded.client(embedded.new_key()) as c:
        model_id = _upload(c, digits_model).json()["id"]
        # Workers held still from submit to cancel: the last four are queued when cancelled, so they are cancelled
        # at once, and only the first runs.
        with embedded.workers_paused():
            submitted = [c.post("/v1/jobs", json=_spec(model_id, seed=i)).json()["id"] for i in range(5)]
            for job_id in submitted[1:]:
                assert c.post(f"/v1/jobs/{job_id}/cancel").json()["status"] == "cancelled"
        seen, cursor = [], None
        while True:
            page = c.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
            assert len(page["items"]) <= 2
            seen += [j["id"] for j in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(reversed(submitted))
        cancelled = c.get("/v1/jobs", params={"status": "cancelled"}).json()["items"]
        assert {j["id"] for j in cancelled} == set(submitted[1:])
        _assert_error(c.get("/v1/jobs", params={"cursor": "nonsense!"}), 422, "invalid_cursor")
        wait_for_job(c, submitted[0])


@pytest.fixture(scope="module")
def quota_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """No worker, so jobs stay queued; small quotas."""
    service = Service(
        tmp_path_factory.mktemp("quota"),
        {"SHEARS_QUOTA_QUEUED_JOBS": "2", "SHEARS_QUOTA_UPLOAD_BYTES": str(100_000)},
    )
    service.start(worker=False)
    yield service
    service.stop()


def test_quotas_answer_429_with_retry_after(quota_service: Service, digits_model: Path, tmp_path: Path) -> None:
    import keras

    keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]).save(
        tmp_path / "d.keras"
    )
    assert (tmp_path / "d.keras").stat().st_size < 100_000 < digits_model.stat().st_size
    with quota_service.client(quota_service.new_key()) as c:
        model_id = _upload(c, tmp_path / "d.keras").json()["id"]
        over_bytes = _upload(c, digits_model)
        _assert_error(over_bytes, 429, "quota_exceeded")
        assert int(over_bytes.headers["retry-after"]) > 0
        spec = {"model_id": model_id, "dataset_id": "builtin:digits", "target": {"sparsity": 0.5}}
        assert c.post("/v1/jobs", json=spec).status_code == 202
        assert c.post("/v1/jobs", json=spec).status_code == 202
        over_queue = c.post("/v1/jobs", json=spec)
        _assert_error(over_queue, 429, "quota_exceeded")
        assert int(over_queue.headers["retry-after"]) > 0


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[bytes, str]] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["content-length"]))
        type(self).received.append((body, self.headers.get("Shears-Signature", "")))
        status = 500 if type(self).fail_first > 0 else 200
        type(self).fail_first -= 1
        self.send_response(status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_live_events_and_a_signed_webhook(embedded: Service, tenant: tuple[str, str]) -> None:
    import sqlite3

    key, model_id = tenant
    _Receiver.received, _Receiver.fail_first = [], 1  # the first delivery fails: it must be retried
    port = free_port()
    server = HTTPServer(("127.0.0.1", port), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with embedded.client(key) as c:
            spec = _spec(model_id, callback_url=f"http://127.0.0.1:{port}/hook", finetune={"epochs": 2})
            job_id = c.post("/v1/jobs", json=spec).json()["id"]
            events = read_events(c, job_id)
            types = [e["type"] for e in events]
            assert types[0] == "status"
            assert events[0]["data"]["status"] == "queued"
            assert events[-1]["data"]["status"] == "succeeded"
            stages = [e["data"]["stage"] for e in events if e["type"] == "progress"]
            assert {"loading", "finetuning", "converting", "profiling"} <= set(stages)
            assert any(e["type"] == "log" and e["data"]["message"].startswith("host: ") for e in events)
            # A late client resumes after an event id and sees only what followed.
            resumed = read_events(c, job_id, last_event_id=events[2]["id"])
            assert [e["id"] for e in resumed] == [e["id"] for e in events[3:]]
            deadline = time.monotonic() + 60
            while len(_Receiver.received) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            deliveries = c.get(f"/v1/jobs/{job_id}/deliveries").json()["items"]
    finally:
        server.shutdown()
    assert [d["succeeded"] for d in deliveries] == [False, True]
    assert deliveries[0]["status_code"] == 500
    body, header = _Receiver.received[-1]
    assert json.loads(body)["id"] == job_id
    assert json.loads(body)["status"] == "succeeded"
    with sqlite3.connect(embedded.root / "shears.db") as db:
        ((secret,),) = db.execute(
            "SELECT webhook_secret FROM tenants JOIN jobs ON jobs.tenant_id = tenants.id WHERE jobs.id = ?", (job_id,)
        ).fetchall()
    assert verify(secret, body, header)
    assert not verify("wrong-secret", body, header)


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "ftp://example.com/x", "http://0.0.0.0/"]
)
def test_callback_urls_to_forbidden_addresses_are_refused(embedded: Service, tenant: tuple[str, str], url: str) -> None:
    key, model_id = tenant
    with embedded.client(key) as c:
        response = c.post("/v1/jobs", json=_spec(model_id, callback_url=url))
    assert response.status_code == 422
    assert response.json()["error"]["code"] in {"forbidden_callback_url", "invalid_callback_url"}


def test_cancel_during_finetuning_stops_the_job_and_leaves_no_files(embedded: Service, tenant: tuple[str, str]) -> None:
    key, model_id = tenant
    with embedded.client(key) as c:
        spec = _spec(model_id, finetune={"epochs": 200, "batch_size": 8}, target={"sparsity": 0.5})
        job_id = c.post("/v1/jobs", json=spec).json()["id"]
        deadline = time.monotonic() + 120
        while c.get(f"/v1/jobs/{job_id}").json()["stage"] != "finetuning":
            assert time.monotonic() < deadline, "the job never reached fine-tuning"
            time.sleep(0.2)
        asked = time.monotonic()
        c.post(f"/v1/jobs/{job_id}/cancel")
        job = wait_for_job(c, job_id, timeout=60)
        stopped_after = time.monotonic() - asked
        assert job["status"] == "cancelled"
        assert stopped_after < 10
        _assert_error(c.get(f"/v1/jobs/{job_id}/model.tflite"), 409)
    assert not list((embedded.root / "artifacts").glob(f"*/jobs/{job_id}"))


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """Two worker slots, but each tenant may run one job at a time."""
    service = Service(
        tmp_path_factory.mktemp("one-at-a-time"),
        {"SHEARS_QUOTA_RUNNING_JOBS": "1", "SHEARS_WORKER_CONCURRENCY": "2"},
    )
    service.start()
    yield service
    service.stop()


def test_running_jobs_past_the_quota_wait_in_the_queue(one_at_a_time: Service, digits_model: Path) -> None:
    with one_at_a_time.client(one_at_a_time.new_key()) as c:
        model_id = _upload(c, digits_model).json()["id"]
        jobs = [c.post("/v1/jobs", json=_spec(model_id, seed=i, finetune={"epochs": 2})).json()["id"] for i in range(2)]
        most_running = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            statuses = [c.get(f"/v1/jobs/{j}").json()["status"] for j in jobs]
            most_running = max(most_running, statuses.count("running"))
            if all(s == "succeeded" for s in statuses):
                break
            time.sleep(0.2)
    assert statuses == ["succeeded", "succeeded"]
    assert most_running == 1
