"""Real servers for tests: uvicorn on a free loopback port and a Celery worker, as subprocesses."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

PG_ADMIN_URL = os.environ.get("SHEARS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SHEARS_TEST_REDIS", "redis://127.0.0.1:6379")
# .ci/run sets this: a missing PostgreSQL or Redis then fails the run instead of skipping.
REQUIRE_SERVICES = os.environ.get("SHEARS_TEST_REQUIRE_SERVICES") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_missing(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc})"
    if REQUIRE_SERVICES:
        pytest.fail(message + "; SHEARS_TEST_REQUIRE_SERVICES=1 so this is a failure")
    pytest.skip(message)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test session; dropped afterwards."""
    import psycopg

    name = f"shears_t_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:  # noqa: BLE001 - any connection failure means the same here
        service_missing("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Redis database numbers the tests may take (bench/faults.py stays below them), and where claims live.
REDIS_TEST_DBS = range(7, 15)
REDIS_CLAIMS_DB = 15
REDIS_CLAIM_TTL_S = 4 * 3600  # a claim left by a killed run lapses


@contextmanager
def redis_broker() -> Iterator[str]:
    """A Redis database number of its own, emptied before and after.

    The number is claimed with SET NX in REDIS_CLAIMS_DB, so two services of one test session (the
    session-wide deployment and a test's own) or two test runs on one Redis never share a queue: a
    worker on a shared database takes the other's tasks and loses them."""
    import redis

    token = secrets.token_hex(8)
    try:
        claims = redis.Redis.from_url(f"{REDIS_URL}/{REDIS_CLAIMS_DB}", socket_connect_timeout=3)
        key = ""
        for number in REDIS_TEST_DBS:
            if claims.set(f"shears-test:redis-db:{number}", token, nx=True, ex=REDIS_CLAIM_TTL_S):
                key = f"shears-test:redis-db:{number}"
                break
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis", exc)
    if not key:
        pytest.fail(f"every test Redis database ({REDIS_TEST_DBS.start}-{REDIS_TEST_DBS.stop - 1}) is claimed")
    url = f"{REDIS_URL}/{number}"
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        if claims.get(key) == token.encode():
            claims.delete(key)


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's S3 server on a loopback port (the real S3 protocol, run in this process); yields its URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        service_missing("moto[server] (the S3 test server)", exc)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "shears-test", "AWS_SECRET_ACCESS_KEY": "shears-test-secret"}


@contextmanager
def shared_services() -> Iterator[dict[str, str]]:
    """What separate hosts share: a fresh PostgreSQL database, a Redis database and an S3 bucket.

    Yields the settings every process needs (with the S3 credentials); nothing else is shared.
    """
    with postgres_database() as db_url, redis_broker() as broker_url, s3_server() as s3_url:
        import boto3

        bucket = f"shears-{secrets.token_hex(4)}"
        boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1", **_boto_credentials()).create_bucket(
            Bucket=bucket
        )
        yield {
            "SHEARS_DATABASE_URL": db_url,
            "SHEARS_BROKER_URL": broker_url,
            "SHEARS_STORAGE_URL": f"s3://{bucket}/shears",
            "SHEARS_S3_ENDPOINT_URL": s3_url,
            "SHEARS_S3_REGION": "us-east-1",
            **S3_CREDENTIALS,
        }


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }


class Service:
    """The API and one worker, started the way `shears serve` starts them."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SHEARS_DATA_DIR": str(root), "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        self.procs: list[subprocess.Popen[bytes]] = []
        self._db: Engine | None = None  # this process's connection to the service's database (new_key)

    def cli(self, *args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "shears.cli", *args], env=self.env, capture_output=True, check=True, timeout=120
        )
        return out.stdout.decode().strip()

    def start(self, worker: bool = True) -> "Service":
        self.cli("db", "upgrade")
        log = (self.root / "api.log").open("wb")
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "app.api.main:app", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        if worker:
            self.start_worker()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if worker:  # until its worker has said it is alive (`/readyz` counts live workers)
                    checks = httpx.get(f"{self.url}/readyz", timeout=2).json().get("checks", {})
                    if checks.get("worker") == "ok":
                        return self
                elif httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"API or worker did not start; see {self.root}/*.log")

    def start_worker(self, *args: str, env: dict[str, str] | None = None) -> Path:
        """Start one more `shears worker` (extra CLI args and env); returns its log file."""
        path = self.root / f"worker{len(self.procs)}.log"
        self.procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "shears.cli", "worker", "--loglevel", "info", *args],
                env={**self.env, **(env or {})},
                stdout=path.open("wb"),
                stderr=subprocess.STDOUT,
            )
        )
        return path

    @contextmanager
    def workers_paused(self) -> Iterator[None]:
        """Hold the workers still (SIGSTOP): a job submitted meanwhile stays queued until the block ends."""
        workers = [proc for proc in self.procs[1:] if proc.poll() is None]  # procs[0] is the API
        for proc in workers:
            proc.send_signal(signal.SIGSTOP)
        try:
            for proc in workers:  # the signal is delivered asynchronously: wait until each is stopped
                deadline = time.monotonic() + 10
                while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
                    assert time.monotonic() < deadline, f"worker {proc.pid} did not stop"
                    time.sleep(0.01)
            yield
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self._db is not None:
            self._db.dispose()
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    def new_key(self, tenant: str | None = None) -> str:
        """A new key for `tenant` (a new tenant if None), written to this service's database the way
        `shears keys create` writes it, but in this process: a subprocess per key cost seconds, and
        the `key` fixture still mints its key through the command."""
        from sqlalchemy.orm import Session

        from app.auth.service import create_key

        if self._db is None:
            from app.db import make_engine
            from app.settings import Settings

            database_url = self.env.get("SHEARS_DATABASE_URL", "")
            self._db = make_engine(Settings(data_dir=self.root, database_url=database_url).resolved_database_url)
        with Session(self._db) as session, session.begin():
            return create_key(session, tenant or f"t-{secrets.token_hex(4)}")

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


def upload_model(client: httpx.Client, path: Path) -> str:
    """Upload a model file through the API; its id (200: the same bytes were uploaded before)."""
    with path.open("rb") as f:
        response = client.post("/v1/models", files={"file": ("model.keras", f)})
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


@contextmanager
def ui_session(service: "Service", key: str) -> Iterator[httpx.Client]:
    """An HTTP client logged in to the dashboard through its form, as a browser would be."""
    with httpx.Client(base_url=service.url, timeout=30) as client:
        response = client.post("/ui/login", data={"key": key})
        assert response.status_code == 303, response.text
        yield client


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return dict(job)
        time.sleep(0.2)  # a finished job is seen within 0.2 s (half a second per wait added up)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s: {job}")


def read_events(
    client: httpx.Client, job_id: str, last_event_id: int | None = None, read_timeout: float = 300
) -> list[dict[str, Any]]:
    """The job's Server-Sent Events after `last_event_id`, until the stream ends (or goes quiet)."""
    import json

    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id else {}
    found: list[dict[str, Any]] = []
    try:
        with client.stream(
            "GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=httpx.Timeout(10, read=read_timeout)
        ) as response:
            response.raise_for_status()
            assert response.headers["content-type"].startswith("text/event-stream")
            event: dict[str, Any] = {}
            for line in response.iter_lines():
                if line.startswith("id: "):
                    event["id"] = int(line[4:])
                elif line.startswith("event: "):
                    event["type"] = line[7:]
                elif line.startswith("data: "):
                    event["data"] = json.loads(line[6:])
                elif not line and event:
                    found.append(event)
                    event = {}
    except httpx.ReadTimeout:
        pass  # nothing more came: the stream only sends keep-alives
    return found
