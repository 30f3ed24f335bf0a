"""The shared harness of bench/faults.py: the shared Redis and PostgreSQL servers (stopped and
started again), a Redis database of our own, a service on it, and a watcher of the jobs."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.faults import (  # noqa: E402
    TERMINAL,
    get_job,
)
from tests.services import REDIS_URL, Service, postgres_database  # noqa: E402

JOB_SPEC: dict[str, Any] = {"dataset_id": "builtin:digits", "target": {"sparsity": 0.3}, "finetune": {"epochs": 2}}
QUOTA = "10000"
# tests.services.redis_broker() takes 7..14 (and keeps its claims in 15): stay clear of them.
OWN_REDIS_DBS = (5, 6, 4, 3)

REDIS_CLI = ["redis-cli", "-h", "127.0.0.1", "-p", "6379"]
REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]
PG_DOWN_S = 10.0


# Shared servers ----------------------------------------------------------------------------


def redis_up() -> bool:
    out = subprocess.run([*REDIS_CLI, "ping"], capture_output=True, text=True, timeout=5, check=False)
    return out.stdout.strip() == "PONG"


def start_redis() -> None:
    subprocess.run(REDIS_START, check=True, timeout=20, capture_output=True)
    deadline = time.monotonic() + 20
    while not redis_up():
        if time.monotonic() > deadline:
            raise RuntimeError("redis-server did not answer within 20 s of being started")
        time.sleep(0.1)


def restart_redis(hold_s: float = 1.0) -> dict[str, float]:
    """Shut Redis down without saving, keep it down `hold_s`, start it again. Returns timings."""
    t0 = time.monotonic()
    try:
        subprocess.run([*REDIS_CLI, "shutdown", "nosave"], capture_output=True, timeout=10, check=False)
        deadline = time.monotonic() + 10
        while redis_up() and time.monotonic() < deadline:
            time.sleep(0.05)
        down = time.monotonic()
        time.sleep(hold_s)
    finally:
        start_redis()
    up = time.monotonic()
    return {"shutdown_s": down - t0, "down_s": up - down, "total_s": up - t0}


def pg_cluster(action: str) -> subprocess.CompletedProcess[str]:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action, *(["-m", "fast"] * (action == "stop"))],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def pg_up() -> bool:
    return pg_cluster("status").returncode == 0


@contextmanager
def own_redis_db() -> Iterator[str]:
    """A Redis database number no test uses, found empty; emptied afterwards."""
    import redis

    for db in OWN_REDIS_DBS:
        client = redis.Redis.from_url(f"{REDIS_URL}/{db}", socket_connect_timeout=3)
        if client.dbsize() == 0:
            break
    else:
        raise RuntimeError(f"none of the Redis databases {OWN_REDIS_DBS} is empty; is another run using them?")
    try:
        yield f"{REDIS_URL}/{db}"
    finally:
        try:
            if not redis_up():
                start_redis()
            redis.Redis.from_url(f"{REDIS_URL}/{db}", socket_connect_timeout=3).flushdb()
        except Exception as exc:  # noqa: BLE001 - report, do not hide the scenario's own outcome
            print(f"could not empty Redis db {db}: {exc}")


def redis_queue(url: str) -> dict[str, int]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    return {"queued messages": int(client.llen("celery")), "unacked": int(client.hlen("unacked"))}


# Service and jobs --------------------------------------------------------------------------


@contextmanager
def service_on(tmp: Path, name: str, broker_url: str, extra: dict[str, str]) -> Iterator[Service]:
    with postgres_database() as db_url:
        root = tmp / name
        root.mkdir()
        env = {
            "SHEARS_DATABASE_URL": db_url,
            "SHEARS_BROKER_URL": broker_url,
            "SHEARS_QUOTA_QUEUED_JOBS": QUOTA,
            "SHEARS_QUOTA_RUNNING_JOBS": QUOTA,
            "SHEARS_WORKER_CONCURRENCY": "1",
            **extra,
        }
        service = Service(root, env)
        try:
            service.start()
            yield service
        finally:
            service.stop()


def upload(client: httpx.Client, model: Path) -> str:
    response = client.post("/v1/models", files={"file": ("tiny.keras", model.read_bytes())})
    response.raise_for_status()
    return str(response.json()["id"])


def log_lines(service: Service, *needles: str, limit: int = 12) -> list[str]:
    lines = []
    for log in [service.root / "api.log", *sorted(service.root.glob("worker*.log"))]:
        if log.exists():
            for line in log.read_text(errors="replace").splitlines():
                if any(n in line for n in needles):
                    lines.append(f"{log.name}: {line[:400]}")
    return lines[:limit]


class Watcher:
    """Polls the jobs every 0.5 s in a thread and records each change of status with its time."""

    def __init__(self, service: Service, key: str, job_ids: list[str], t0: float) -> None:
        self.service, self.key, self.job_ids, self.t0 = service, key, job_ids, t0
        self.current: dict[str, dict[str, Any]] = {}
        self.changes: dict[str, list[tuple[float, str, int]]] = {j: [] for j in job_ids}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.service.client(self.key) as client:
            while not self.stop.is_set():
                for job_id in self.job_ids:
                    job = get_job(client, job_id)
                    if job is None:
                        continue
                    seen = self.changes[job_id]
                    if not seen or (seen[-1][1], seen[-1][2]) != (job["status"], job["attempts"]):
                        seen.append((time.monotonic() - self.t0, job["status"], job["attempts"]))
                    self.current[job_id] = job
                self.stop.wait(0.5)

    def all_terminal(self) -> bool:
        return len(self.current) == len(self.job_ids) and all(j["status"] in TERMINAL for j in self.current.values())

    def __enter__(self) -> "Watcher":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
