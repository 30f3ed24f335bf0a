"""Faults: Redis restarted with jobs queued and running; PostgreSQL unreachable for 10 s under load.

Both scenarios start the API (uvicorn) and one Celery worker as subprocesses (`tests.services.Service`)
on a fresh PostgreSQL database and a Redis database number of their own (one the test suite's
`redis_broker()` never picks, checked empty first and emptied afterwards), and use a tiny model
(Flatten -> Dense(10) on the built-in digits) with jobs on builtin:digits, sparsity 0.3, 2
fine-tuning epochs.

(a) Redis restart. Lease timings are short (heartbeat 1 s, stale after 10 s, a queued job's task
    resent after 15 s). N jobs are submitted; once one is running, Redis is shut down without
    saving and started again with the machine's own command line (it keeps nothing on disk, so
    every queued message is lost). Then every job must reach exactly one terminal state (counted
    from its stored events, `GET /v1/jobs/{id}/events`), succeed, and leave one set of artifacts.

(b) PostgreSQL stopped for 10 s under load. A few clients poll `GET /v1/jobs` every 0.5 s and
    submit a job every few seconds, and a probe asks `/readyz` every 0.5 s. Once a job is running,
    the cluster is stopped (`-m fast`), left down 10 s and started again; the traffic goes on 15 s
    more. Targets: no 500 at any time; during the outage the API answers 503 with `Retry-After` and
    `/readyz` answers 503 naming the database; every job that was accepted (202) succeeds afterwards.

Redis and PostgreSQL are this machine's shared servers: each outage is kept short and both are
started again in a `finally`, whatever happens. Each scenario is bounded in time. Exit status 1 if
a target is missed.

The client traffic and the checks on finished jobs come from tests/faults.py, which
tests/workers/test_faults.py also uses to run both scenarios in a smaller form, without touching
the shared servers (a redis-server of its own, a TCP relay in front of PostgreSQL that it cuts).

    .venv/bin/python bench/faults.py [--only a|b] [--jobs 6]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown  # noqa: E402
from bench.load import git_commit, scan_logs, train_tiny_model  # noqa: E402
from tests.faults import (  # noqa: E402
    TERMINAL,
    Hit,
    Traffic,
    artifact_sets,
    get_job,
    job_events,
    status_events,
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


# (a) Redis restart -------------------------------------------------------------------------


def scenario_redis(tmp: Path, model: Path, n_jobs: int, wait_s: float) -> bool:
    print(f"\n## (a) Redis restarted with jobs queued and running ({n_jobs} jobs)\n", flush=True)
    lease = {"SHEARS_HEARTBEAT_S": "1", "SHEARS_STALE_AFTER_S": "10", "SHEARS_REQUEUE_AFTER_S": "15"}
    started_at = datetime.now(UTC)
    with own_redis_db() as broker_url, service_on(tmp, "redis", broker_url, lease) as service:
        print(f"service on {service.url}, Redis db {broker_url.rsplit('/', 1)[1]}; {started_at:%Y-%m-%d %H:%M} UTC")
        key = service.new_key("faults-redis")
        with service.client(key) as client:
            model_id = upload(client, model)
            job_ids = []
            for _ in range(n_jobs):
                response = client.post("/v1/jobs", json={"model_id": model_id, **JOB_SPEC})
                if response.status_code != 202:
                    raise RuntimeError(f"submit: {response.status_code} {response.text}")
                job_ids.append(response.json()["id"])
        t0 = time.monotonic()
        with Watcher(service, key, job_ids, t0) as watcher:
            deadline = time.monotonic() + 180
            while not any(j["status"] == "running" for j in watcher.current.values()):
                if time.monotonic() > deadline:
                    raise RuntimeError("no job started running within 180 s")
                time.sleep(0.2)
            before = dict(Counter(j["status"] for j in watcher.current.values()))
            in_redis_before = redis_queue(broker_url)
            restart_at = time.monotonic() - t0
            timings = restart_redis()
            in_redis_after = redis_queue(broker_url)
            print(
                f"restart at +{restart_at:.1f} s after submitting: jobs {before}; Redis before {in_redis_before}, "
                f"after {in_redis_after}; shutdown {timings['shutdown_s']:.2f} s, down {timings['down_s']:.2f} s",
                flush=True,
            )
            deadline = time.monotonic() + wait_s
            while not watcher.all_terminal() and time.monotonic() < deadline:
                time.sleep(1)
            finished_after = time.monotonic() - t0 - restart_at
        with service.client(key) as client:
            rows = []
            ok = True
            for job_id in job_ids:
                job = get_job(client, job_id) or {"status": "?", "attempts": "?"}
                statuses = status_events(job_events(client, job_id)) if job["status"] in TERMINAL else []
                terminal = [s for s in statuses if s in TERMINAL]
                sets = artifact_sets(service, job_id)
                path = " -> ".join(f"{s}#{a}@{t:.0f}s" for t, s, a in watcher.changes[job_id])
                good = (
                    job["status"] == "succeeded"
                    and len(terminal) == 1
                    and len(sets) == 1
                    and sets[0] == ["model.keras", "model.tflite", "report.json"]
                )
                ok &= good
                rows.append(
                    [
                        job_id,
                        job["status"],
                        job["attempts"],
                        ", ".join(f"{s} {c}" for s, c in Counter(statuses).items()),
                        len(terminal),
                        len(sets),
                        path,
                        "ok" if good else "MISSED",
                    ]
                )
        reaper = log_lines(service, "reaper requeued")
        print()
        print(
            markdown(
                [
                    "job",
                    "final",
                    "attempts",
                    "status events",
                    "terminal events",
                    "artifact sets",
                    "seen by polling (status#attempt@s since submit)",
                    "target",
                ],
                rows,
            )
        )
        print()
        print(
            f"All terminal {finished_after:.0f} s after the restart"
            if watcher.all_terminal()
            else f"NOT all terminal {wait_s:.0f} s after the restart"
        )
        print("Reaper lines in the worker log:")
        for line in reaper:
            print(f"  {line}")
        for name, count in scan_logs(service.root).items():
            print(f"- {name}: {count}")
    verdict = ok and redis_up()
    print(f"\nTarget (a) (every job exactly one terminal state, all succeeded): {'met' if verdict else 'MISSED'}")
    return verdict


# (b) PostgreSQL outage ---------------------------------------------------------------------


def scenario_postgres(tmp: Path, model: Path, clients: int, wait_s: float) -> bool:
    print(f"\n## (b) PostgreSQL unreachable for {PG_DOWN_S:.0f} s under load ({clients} clients)\n", flush=True)
    started_at = datetime.now(UTC)
    with own_redis_db() as broker_url, service_on(tmp, "postgres", broker_url, {}) as service:
        print(f"service on {service.url}, Redis db {broker_url.rsplit('/', 1)[1]}; {started_at:%Y-%m-%d %H:%M} UTC")
        keys = [service.new_key(f"faults-pg-{i}") for i in range(clients)]
        models = []
        for key in keys:
            with service.client(key) as client:
                models.append(upload(client, model))
        marks: dict[str, float] = {}
        try:
            with Traffic(service, keys, models, JOB_SPEC, submit_every_s=10.0) as traffic:
                deadline = time.monotonic() + 180
                # Stop the database while a job runs and others wait, after 10 s of normal traffic.
                while True:
                    if time.monotonic() > deadline:
                        raise RuntimeError("no job started running within 180 s")
                    running = False
                    for key in keys:
                        with service.client(key) as c:
                            listed = c.get("/v1/jobs", params={"status": "running"})
                        running |= listed.status_code == 200 and bool(listed.json()["items"])
                    if running and time.monotonic() - traffic.t0 >= 10:
                        break
                    time.sleep(0.5)
                marks["stop issued"] = time.monotonic() - traffic.t0
                stopped = pg_cluster("stop")
                marks["stopped"] = time.monotonic() - traffic.t0
                if stopped.returncode != 0:
                    raise RuntimeError(f"pg_ctlcluster stop failed: {stopped.stderr}")
                time.sleep(PG_DOWN_S)
                marks["start issued"] = time.monotonic() - traffic.t0
                begun = pg_cluster("start")
                marks["started"] = time.monotonic() - traffic.t0
                if begun.returncode != 0:
                    raise RuntimeError(f"pg_ctlcluster start failed: {begun.stderr}")
                time.sleep(15)
                traffic.submitting.clear()
                time.sleep(1)
        finally:
            if not pg_up():
                print("starting PostgreSQL again (finally)")
                pg_cluster("start")
        print("timeline (s since traffic began): " + ", ".join(f"{k} {v:.1f}" for k, v in marks.items()), flush=True)

        def phase(hit: Hit) -> str:
            """By when the request was sent: the outage runs from the stop command to the end of the start."""
            if hit.at_s < marks["stop issued"]:
                return "before"
            if hit.at_s < marks["stopped"]:
                return "outage: stopping"
            if hit.at_s < marks["start issued"]:
                return "outage: down"
            if hit.at_s < marks["started"]:
                return "outage: starting"
            return "after"

        rows = []
        for ph in ("before", "outage: stopping", "outage: down", "outage: starting", "after"):
            for route in ("GET /v1/jobs", "POST /v1/jobs", "GET /readyz"):
                hs = [h for h in traffic.hits if phase(h) == ph and h.route == route]
                counts = Counter(str(h.status or "transport") for h in hs)
                five03 = [h for h in hs if h.status == 503]
                rows.append(
                    [
                        ph,
                        route,
                        len(hs),
                        ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
                        f"{sum(h.retry_after is not None for h in five03)}/{len(five03)}",
                        max((h.latency_s for h in hs), default=None),
                    ]
                )
        print()
        print(markdown(["phase", "route", "requests", "statuses", "503 with Retry-After", "slowest s"], rows))
        outage = [h for h in traffic.hits if phase(h).startswith("outage")]
        ready = Counter(f"{h.status} {h.body}" for h in outage if h.route == "GET /readyz")
        print("\n/readyz during the outage (503s carry no Retry-After; none is asked of a readiness probe):")
        for answer, count in ready.items():
            print(f"  {count} x {answer}")
        ready_names_db = any(
            h.status == 503 and json.loads(h.body)["checks"]["database"].startswith("unreachable")
            for h in outage
            if h.route == "GET /readyz"
        )
        api_503 = Counter(h.body for h in outage if h.route != "GET /readyz" and h.status == 503)
        print("API 503 bodies during the outage:")
        for body, count in api_503.items():
            print(f"  {count} x {body}")
        # Never a 500 or a transport error; a 503 only during the outage, and from the API with Retry-After.
        bad = [h for h in traffic.hits if h.status is None or (h.status >= 500 and h.status != 503)]
        bad += [
            h
            for h in traffic.hits
            if h.status == 503
            and (not phase(h).startswith("outage") or (h.route != "GET /readyz" and h.retry_after is None))
        ]
        for h in bad[:20]:
            print(
                f"  UNEXPECTED {h.route} at {h.at_s:.1f} s ({phase(h)}): {h.status} "
                f"Retry-After={h.retry_after} {h.body}"
            )

        # Every accepted job must now finish, and succeed.
        jobs: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + wait_s
        waited = time.monotonic()
        while time.monotonic() < deadline:
            for key, job_id, _ in traffic.submitted:
                if jobs.get(job_id, {}).get("status") not in TERMINAL:
                    with service.client(key) as c:
                        job = get_job(c, job_id)
                    if job is not None:
                        jobs[job_id] = job
            if len(jobs) == len(traffic.submitted) and all(j["status"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(2)
        waited = time.monotonic() - waited
        job_rows = []
        for key, job_id, at in traffic.submitted:
            job = jobs.get(job_id, {"status": "?", "attempts": "?", "error": None})
            with service.client(key) as c:
                statuses = status_events(job_events(c, job_id)) if job["status"] in TERMINAL else []
            when = "before" if at < marks["stop issued"] else ("outage" if at < marks["started"] else "after")
            job_rows.append(
                [
                    job_id,
                    f"{at:.1f} ({when})",
                    job["status"],
                    job["attempts"],
                    (job.get("error") or {}).get("code", ""),
                    sum(s in TERMINAL for s in statuses),
                    ", ".join(f"{s} {c}" for s, c in Counter(statuses).items()),
                ]
            )
        print()
        print(
            markdown(
                ["job", "submitted at s", "final", "attempts", "error", "terminal events", "status events"], job_rows
            )
        )
        finals = Counter(j["status"] for j in jobs.values())
        print(
            f"\n{len(traffic.submitted)} jobs accepted; final {dict(finals)}; waited {waited:.0f} s after the traffic"
        )
        not_ok = [r for r in job_rows if r[2] != "succeeded" or r[5] != 1]
        for name, count in scan_logs(service.root).items():
            print(f"- {name}: {count}")
        evidence = log_lines(service, "unhandled error", " crashed", "internal_error", "Traceback")
        if evidence:
            print("Log lines:")
            for line in evidence:
                print(f"  {line}")
        print("Worker log: what the jobs went through (first 30 lines):")
        for line in log_lines(
            service, "heartbeat for", " crashed", "Retry in", "reaper", "succeeded:", "not runnable", limit=30
        ):
            if line.startswith("worker"):
                print(f"  {line}")
    verdict = not bad and bool(api_503) and ready_names_db and not not_ok and len(jobs) == len(traffic.submitted)
    print(f"\nTarget (b) (no 500, 503 + Retry-After, every job succeeds): {'met' if verdict else 'MISSED'}")
    return verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("a", "b"))
    parser.add_argument("--jobs", type=int, default=6, help="jobs in (a) (default 6)")
    parser.add_argument("--clients", type=int, default=3, help="clients in (b) (default 3)")
    parser.add_argument("--wait", type=float, default=360.0, help="bound on waiting for the jobs, s (default 360)")
    parser.add_argument("--keep", action="store_true", help="keep the services' data folders (logs)")
    args = parser.parse_args()

    print(f"faults: commit {git_commit()}; 1-min load {os.getloadavg()[0]:.1f}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="shears-bench-faults-"))
    results: dict[str, bool] = {}
    try:
        model = train_tiny_model(tmp / "tiny.keras")
        if args.only in (None, "a"):
            try:
                results["(a) Redis restart"] = scenario_redis(tmp, model, args.jobs, args.wait)
            except Exception as exc:  # noqa: BLE001 - one scenario's failure is reported, the next still runs
                print(f"(a) aborted: {type(exc).__name__}: {exc}")
                results["(a) Redis restart"] = False
        if args.only in (None, "b"):
            try:
                results["(b) PostgreSQL outage"] = scenario_postgres(tmp, model, args.clients, args.wait)
            except Exception as exc:  # noqa: BLE001
                print(f"(b) aborted: {type(exc).__name__}: {exc}")
                results["(b) PostgreSQL outage"] = False
    finally:
        if not redis_up():
            print("Redis was down at exit: starting it")
            start_redis()
        if not pg_up():
            print("PostgreSQL was down at exit: starting it")
            pg_cluster("start")
        failed = not results or not all(results.values())
        if failed or args.keep:
            print(f"data folders kept: {tmp}")
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    print()
    print(markdown(["scenario", "target"], [[k, "met" if v else "MISSED"] for k, v in results.items()]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
