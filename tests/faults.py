"""Faults on demand for the tests and bench/faults.py: a Redis of our own to restart, a TCP relay to
PostgreSQL to cut, client traffic that records every answer, and the checks on finished jobs.

Neither touches the machine's shared servers: the Redis runs on a free port, and the relay stands
between the service and PostgreSQL, so cutting it makes the database unreachable for this service
only.
"""

import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests.services import Service, free_port, read_events, service_missing

TERMINAL = ("succeeded", "failed", "cancelled")


class PrivateRedis:
    """A `redis-server` on a free loopback port that keeps nothing on disk: a restart loses every message."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        try:
            self.proc = subprocess.Popen(
                [*args, "--daemonize", "no", "--dir", str(self.folder)],
                stdout=(self.folder / "redis.log").open("ab"),
                stderr=subprocess.STDOUT,
            )
        except FileNotFoundError as exc:
            service_missing("redis-server", exc)
        deadline = time.monotonic() + 20
        while not self.up():
            if time.monotonic() > deadline or self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"redis-server did not start; see {self.folder / 'redis.log'}")
            time.sleep(0.05)

    def up(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()  # SIGTERM: a shutdown without saving (--save "")
            self.proc.wait(timeout=20)
            self.proc = None

    def restart(self, down_s: float = 1.0) -> None:
        self.stop()
        time.sleep(down_s)
        self.start()

    def __enter__(self) -> "PrivateRedis":
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


class TcpProxy:
    """Relays a free loopback port to `upstream`. `cut()` drops every connection and refuses new
    ones (as a stopped server would); `restore()` accepts again."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        if self._listener is not None:
            _close(self._listener)  # shutdown() wakes the thread blocked in accept()
            self._listener = None
        with self._lock:
            live = list(self._open)
        for conn in live:
            _close(conn)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._open |= {client, server}
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for conn in (src, dst):
                _close(conn)
            with self._lock:
                self._open -= {src, dst}

    def __enter__(self) -> "TcpProxy":
        self.restore()
        return self

    def __exit__(self, *_: object) -> None:
        self.cut()


def _close(conn: socket.socket) -> None:
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


# Finished jobs ---------------------------------------------------------------------------------


def job_events(client: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every stored event of a finished job. The stream ends at the first terminal event, so ask
    again from there: a second terminal event (the bug we look for) would come after it."""
    first = read_events(client, job_id, read_timeout=60)
    last = max((e.get("id", 0) for e in first), default=0)
    return first + read_events(client, job_id, last, read_timeout=3)


def status_events(events: list[dict[str, Any]]) -> list[str]:
    return [str(e["data"]["status"]) for e in events if e.get("type") == "status"]


def artifact_sets(service: Service, job_id: str) -> list[list[str]]:
    """The job's folders in the artifact store, each as its sorted file names."""
    return [sorted(p.name for p in d.iterdir()) for d in (service.root / "artifacts").glob(f"*/jobs/{job_id}")]


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    """The job, or None while the API cannot answer (503 during an outage)."""
    try:
        response = client.get(f"/v1/jobs/{job_id}")
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


def wait_all(service: Service, jobs: list[tuple[str, str]], timeout: float) -> dict[str, dict[str, Any]]:
    """Poll (key, job id) pairs until every job is terminal or `timeout` passes; the last view of each."""
    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for key, job_id in jobs:
            if seen.get(job_id, {}).get("status") not in TERMINAL:
                with service.client(key) as client:
                    job = get_job(client, job_id)
                if job is not None:
                    seen[job_id] = job
        if len(seen) == len(jobs) and all(j["status"] in TERMINAL for j in seen.values()):
            break
        time.sleep(1)
    return seen


# Traffic -------------------------------------------------------------------------------------


@dataclass
class Hit:
    route: str
    at_s: float
    status: int | None
    latency_s: float
    retry_after: str | None
    body: str


class Traffic:
    """Clients (one per key) polling the job list every 0.5 s and submitting a job every
    `submit_every_s`, and a `/readyz` probe; every answer is kept in `hits`."""

    def __init__(
        self, service: Service, keys: list[str], models: list[str], job_spec: dict[str, Any], submit_every_s: float
    ) -> None:
        self.service, self.keys, self.models, self.job_spec = service, keys, models, job_spec
        self.submit_every_s = submit_every_s
        self.t0 = time.monotonic()
        self.hits: list[Hit] = []
        self.submitted: list[tuple[str, str, float]] = []  # (key, job id, at)
        self.stop = threading.Event()
        self.submitting = threading.Event()
        self.submitting.set()
        self.threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(len(keys))]
        self.threads.append(threading.Thread(target=self._probe, daemon=True))

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _call(self, client: httpx.Client, route: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        t = time.monotonic()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.hits.append(Hit(route, t - self.t0, None, time.monotonic() - t, None, f"{type(exc).__name__}: {exc}"))
            return None
        body = response.text[:500] if route == "GET /readyz" or response.status_code >= 400 else ""
        retry_after = response.headers.get("Retry-After")
        self.hits.append(Hit(route, t - self.t0, response.status_code, time.monotonic() - t, retry_after, body))
        return response

    def _client(self, i: int) -> None:
        next_submit = time.monotonic() + i * self.submit_every_s / len(self.keys)
        with self.service.client(self.keys[i]) as client:
            client.timeout = httpx.Timeout(30)
            while not self.stop.is_set():
                if self.submitting.is_set() and time.monotonic() >= next_submit:
                    spec = {"model_id": self.models[i], **self.job_spec}
                    r = self._call(client, "POST /v1/jobs", "POST", "/v1/jobs", json=spec)
                    if r is not None and r.status_code == 202:
                        self.submitted.append((self.keys[i], r.json()["id"], self.now()))
                    next_submit = time.monotonic() + self.submit_every_s
                self._call(client, "GET /v1/jobs", "GET", "/v1/jobs", params={"limit": 20})
                self.stop.wait(0.5)

    def _probe(self) -> None:
        with httpx.Client(base_url=self.service.url, timeout=30) as client:
            while not self.stop.is_set():
                self._call(client, "GET /readyz", "GET", "/readyz")
                self.stop.wait(0.5)

    def __enter__(self) -> "Traffic":
        for t in self.threads:
            t.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)
