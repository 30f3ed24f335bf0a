"""Broker and database faults under real jobs: a Redis restart loses no job, a PostgreSQL outage
gives 503s (never a 500) and fails no job. The heavier, reported version is bench/faults.py."""

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.faults import (
    TERMINAL,
    PrivateRedis,
    TcpProxy,
    Traffic,
    artifact_sets,
    get_job,
    job_events,
    status_events,
    wait_all,
)
from tests.services import Service, postgres_database, redis_broker

JOB_SPEC = {"dataset_id": "builtin:digits", "target": {"sparsity": 0.3}, "finetune": {"epochs": 0}}
OUTAGE_S = 10.0


@contextmanager
def running_service(root: Path, env: dict[str, str]) -> Iterator[Service]:
    root.mkdir()
    service = Service(root, {"SHEARS_QUOTA_QUEUED_JOBS": "1000", "SHEARS_QUOTA_RUNNING_JOBS": "1000", **env})
    try:
        yield service.start()
    finally:
        service.stop()


def _upload(service: Service, key: str, model: Path) -> str:
    with service.client(key) as c:
        response = c.post("/v1/models", files={"file": ("m.keras", model.read_bytes())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _check_finished_once(service: Service, key: str, job_ids: list[str], jobs: dict[str, dict[str, Any]]) -> None:
    """Each job succeeded, with exactly one terminal status event and one set of artifacts."""
    with service.client(key) as c:
        for job_id in job_ids:
            assert jobs[job_id]["status"] == "succeeded", jobs[job_id]
            terminal = [s for s in status_events(job_events(c, job_id)) if s in TERMINAL]
            assert terminal == ["succeeded"], (job_id, terminal)
            (files,) = artifact_sets(service, job_id)
            assert {"model.keras", "model.tflite", "report.json"} <= set(files)


def test_redis_restart_with_jobs_queued_and_running_loses_none(tmp_path: Path, digits_model: Path) -> None:
    lease = {"SHEARS_HEARTBEAT_S": "1", "SHEARS_STALE_AFTER_S": "10", "SHEARS_REQUEUE_AFTER_S": "5"}
    with (
        PrivateRedis(tmp_path / "redis") as broker,
        postgres_database() as db_url,
        running_service(
            tmp_path / "svc", {"SHEARS_DATABASE_URL": db_url, "SHEARS_BROKER_URL": broker.url, **lease}
        ) as service,
    ):
        key = service.new_key()
        model_id = _upload(service, key, digits_model)
        with service.client(key) as c:
            # Two: one running and one queued (one worker slot, a prefetch of one) when the broker restarts.
            job_ids = [c.post("/v1/jobs", json={"model_id": model_id, **JOB_SPEC}).json()["id"] for _ in range(2)]
            deadline = time.monotonic() + 120
            while not any((get_job(c, j) or {}).get("status") == "running" for j in job_ids):
                assert time.monotonic() < deadline, "no job started"
                time.sleep(0.2)
        queued = _messages(broker)
        broker.restart(down_s=1.0)
        # The restart really lost the queued messages: only the reaper can bring those jobs back.
        assert queued >= 1
        assert _messages(broker) == 0
        jobs = wait_all(service, [(key, j) for j in job_ids], timeout=150)
        _check_finished_once(service, key, job_ids, jobs)


def _messages(broker: PrivateRedis) -> int:
    """Messages waiting in any queue (Celery keeps each queue as a Redis list)."""
    import redis

    client = redis.Redis.from_url(broker.url)
    return sum(int(client.llen(k)) for k in client.keys() if client.type(k) == b"list")


def _through(proxy: TcpProxy, url: str) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{auth}@127.0.0.1:{proxy.port}" if auth else f"127.0.0.1:{proxy.port}"))


def test_postgres_unreachable_under_load_answers_503_and_fails_no_job(tmp_path: Path, digits_model: Path) -> None:
    with postgres_database() as db_url, redis_broker() as broker_url:
        parts = urlsplit(db_url)
        with (
            TcpProxy((parts.hostname or "127.0.0.1", parts.port or 5432)) as proxy,
            running_service(
                tmp_path / "svc", {"SHEARS_DATABASE_URL": _through(proxy, db_url), "SHEARS_BROKER_URL": broker_url}
            ) as service,
        ):
            keys = [service.new_key() for _ in range(2)]
            models = [_upload(service, key, digits_model) for key in keys]
            with Traffic(service, keys, models, JOB_SPEC, submit_every_s=6.0) as traffic:
                deadline = time.monotonic() + 120
                while not (traffic.now() > 3 and _any_running(service, keys)):
                    assert time.monotonic() < deadline, "no job started"
                    time.sleep(0.3)
                cut_at = traffic.now()
                proxy.cut()
                time.sleep(OUTAGE_S)
                proxy.restore()
                restored_at = traffic.now()
                # Traffic goes on until a job has been accepted after the outage (was a fixed 5 s).
                deadline = time.monotonic() + 60
                while not any(at >= restored_at for _, _, at in list(traffic.submitted)):
                    assert time.monotonic() < deadline, "no job was accepted after the outage"
                    time.sleep(0.2)
                traffic.submitting.clear()
                time.sleep(1)
            outage = [h for h in traffic.hits if cut_at <= h.at_s < restored_at]
            # A request in flight when the cut came (started a moment before it) met the outage too.
            others = [h for h in traffic.hits if not (cut_at <= h.at_s + h.latency_s and h.at_s < restored_at)]
            # Never a 500 or a dropped request; 503 only while the database is away.
            assert not [h for h in traffic.hits if h.status is None or (h.status >= 500 and h.status != 503)]
            assert not [h for h in others if h.status == 503], [h for h in others if h.status == 503][:3]
            api_503 = [h for h in outage if h.route != "GET /readyz" and h.status == 503]
            assert api_503, "the outage was not seen by the API"
            assert all(h.retry_after for h in api_503)
            assert all(json.loads(h.body)["error"]["code"] == "database_unavailable" for h in api_503)
            ready = [json.loads(h.body) for h in outage if h.route == "GET /readyz" and h.status == 503]
            assert ready
            assert all(r["checks"]["database"].startswith("unreachable") for r in ready)
            # Submissions were accepted before and after the outage, and every accepted job succeeds.
            assert any(at < cut_at for _, _, at in traffic.submitted)
            assert any(at >= restored_at for _, _, at in traffic.submitted)
            jobs = wait_all(service, [(k, j) for k, j, _ in traffic.submitted], timeout=150)
            for key in keys:
                mine = [j for k, j, _ in traffic.submitted if k == key]
                _check_finished_once(service, key, mine, jobs)


def _any_running(service: Service, keys: list[str]) -> bool:
    for key in keys:
        with service.client(key) as c:
            listed = c.get("/v1/jobs", params={"status": "running"})
        if listed.status_code == 200 and listed.json()["items"]:
            return True
    return False
