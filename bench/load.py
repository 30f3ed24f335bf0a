"""Load: 50 concurrent clients uploading, submitting and polling for 60 s against PostgreSQL + Redis.

The API (uvicorn) and one Celery worker run as subprocesses (`tests.services.Service`) on a fresh
PostgreSQL database and a Redis database number of their own, with the per-tenant job quotas
raised so that no client is held back by them. A tiny model (Flatten -> Dense(10), trained for a
few epochs on the built-in digits, in a subprocess) keeps every job short: builtin:digits, target
sparsity 0.3, no fine-tuning.

Each client is a thread with its own `httpx.Client` and its own tenant key (made before the clock
starts). Until the window closes it loops: upload the model (201 the first time, 200 afterwards:
the same bytes are deduplicated), submit a job, poll `GET /v1/jobs/{id}` every 0.5 s until the job
is terminal. No request is started after the window closes; one in flight is allowed to finish
(timeout 30 s). Every request's latency and status is recorded.

An error is any 5xx or transport error; 429 is counted apart; any other 4xx is reported as
unexpected. Exit status 1 if there was an error or an unexpected 4xx.

    .venv/bin/python bench/load.py [--clients 50] [--seconds 60]
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown  # noqa: E402
from tests.services import Service, postgres_database, redis_broker  # noqa: E402

TERMINAL = ("succeeded", "failed", "cancelled")
POLL_S = 0.5
REQUEST_TIMEOUT_S = 30.0
JOB_SPEC: dict[str, Any] = {"dataset_id": "builtin:digits", "target": {"sparsity": 0.3}, "finetune": {"epochs": 0}}
QUOTA = "10000"

TRAIN = """
import sys
import keras
from pruning.datasets import digits
keras.utils.set_random_seed(0)
data = digits()
model = keras.Sequential(
    [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")], name="tiny"
)
model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(data.x_train, data.y_train, epochs=int(sys.argv[2]), batch_size=64, verbose=0)
model.save(sys.argv[1])
"""


def train_tiny_model(path: Path, epochs: int = 5) -> Path:
    """Flatten -> Dense(10) on the built-in digits, trained in a subprocess (TensorFlow stays out of here)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(
        [sys.executable, "-c", TRAIN, str(path), str(epochs)], cwd=REPO, env=env, capture_output=True, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"training the tiny model failed: {out.stderr.decode(errors='replace')[-2000:]}")
    return path


def git_commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=False)
    return out.stdout.strip() + (" (working tree with changes)" if dirty.stdout.strip() else "")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


@dataclass
class Record:
    route: str
    status: int | None  # None: a transport error
    latency_s: float
    at_s: float  # since the window opened
    detail: str = ""


@dataclass
class Shared:
    records: list[Record] = field(default_factory=list)
    jobs: list[tuple[str, str]] = field(default_factory=list)  # (key, job id)
    started: float = 0.0


def timed(
    shared: Shared, client: httpx.Client, route: str, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    t0 = time.monotonic()
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        shared.records.append(
            Record(route, None, time.monotonic() - t0, t0 - shared.started, f"{type(exc).__name__}: {exc}")
        )
        return None
    detail = response.text[:300] if response.status_code >= 400 and response.status_code != 429 else ""
    shared.records.append(Record(route, response.status_code, time.monotonic() - t0, t0 - shared.started, detail))
    return response


def client_loop(
    url: str, key: str, model: bytes, shared: Shared, start: threading.Barrier, deadline: list[float]
) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=headers, timeout=REQUEST_TIMEOUT_S) as client:
        start.wait()
        time.sleep(random.uniform(0, POLL_S))  # clients out of step, as real ones would be

        def open_() -> bool:
            return time.monotonic() < deadline[0]

        while open_():
            upload = timed(shared, client, "POST /v1/models", "POST", "/v1/models", files={"file": ("m.keras", model)})
            if upload is None or upload.status_code not in (200, 201):
                time.sleep(POLL_S)
                continue
            if not open_():
                break
            spec = {"model_id": upload.json()["id"], **JOB_SPEC}
            submitted = timed(shared, client, "POST /v1/jobs", "POST", "/v1/jobs", json=spec)
            if submitted is None or submitted.status_code != 202:
                time.sleep(POLL_S)
                continue
            job_id = submitted.json()["id"]
            shared.jobs.append((key, job_id))
            next_poll = time.monotonic()
            while open_():
                next_poll += POLL_S
                pause = min(next_poll, deadline[0]) - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if not open_():
                    break
                job = timed(shared, client, "GET /v1/jobs/{id}", "GET", f"/v1/jobs/{job_id}")
                if job is not None and job.status_code == 200 and job.json()["status"] in TERMINAL:
                    break


def scan_logs(root: Path) -> dict[str, int]:
    """Counts of worrying lines in the service's own logs."""
    counts = {"api unhandled errors": 0, "api database unavailable": 0, "worker tracebacks": 0, "jobs crashed": 0}
    api = root / "api.log"
    if api.exists():
        text = api.read_text(errors="replace")
        counts["api unhandled errors"] = text.count("unhandled error")
        counts["api database unavailable"] = text.count("database unavailable")
    for log in root.glob("worker*.log"):
        text = log.read_text(errors="replace")
        counts["worker tracebacks"] += text.count("Traceback")
        counts["jobs crashed"] += text.count(" crashed")
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--keep", action="store_true", help="keep the service's data folder (logs) afterwards")
    args = parser.parse_args()

    print(f"load: {args.clients} clients for {args.seconds:.0f} s; commit {git_commit()}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="shears-bench-load-"))
    failed = True
    try:
        model_path = train_tiny_model(tmp / "tiny.keras")
        model = model_path.read_bytes()
        with postgres_database() as db_url, redis_broker() as broker_url:
            env = {
                "SHEARS_DATABASE_URL": db_url,
                "SHEARS_BROKER_URL": broker_url,
                "SHEARS_QUOTA_QUEUED_JOBS": QUOTA,
                "SHEARS_QUOTA_RUNNING_JOBS": QUOTA,
                "SHEARS_WORKER_CONCURRENCY": "1",
            }
            (tmp / "service").mkdir()
            service = Service(tmp / "service", env)
            try:
                service.start()
                print(f"service on {service.url}, Redis db {broker_url.rsplit('/', 1)[1]}", flush=True)
                keys = [service.new_key(f"load-{i:02d}") for i in range(args.clients)]
                failed = run(service, keys, model, args.seconds)
            finally:
                service.stop()
                for name, count in scan_logs(service.root).items():
                    print(f"- {name}: {count}")
    finally:
        if failed or args.keep:
            print(f"service data folder kept: {tmp}")
        else:
            subprocess.run(["rm", "-rf", str(tmp)], check=False)
    return 1 if failed else 0


def run(service: Service, keys: list[str], model: bytes, seconds: float) -> bool:
    shared = Shared()
    barrier = threading.Barrier(len(keys) + 1)
    deadline = [float("inf")]
    threads = [
        threading.Thread(target=client_loop, args=(service.url, k, model, shared, barrier, deadline), daemon=True)
        for k in keys
    ]
    for t in threads:
        t.start()
    load_start = os.getloadavg()[0]
    opened_utc = datetime.now(UTC)
    shared.started = time.monotonic()
    deadline[0] = shared.started + seconds
    barrier.wait()
    for t in threads:
        t.join(timeout=seconds + REQUEST_TIMEOUT_S + 30)
    closed = time.monotonic()
    closed_utc = datetime.now(UTC)
    load_end = os.getloadavg()[0]
    stuck = sum(t.is_alive() for t in threads)

    # Where each job ended up, read after the window (not counted in the figures above).
    finished_at: list[datetime] = []
    run_s: list[float] = []
    final: dict[str, int] = {}
    for key, job_id in list(shared.jobs):
        with service.client(key) as c:
            job = c.get(f"/v1/jobs/{job_id}").json()
        final[job["status"]] = final.get(job["status"], 0) + 1
        if job["status"] in TERMINAL and job["finished_at"]:
            when = datetime.fromisoformat(job["finished_at"])
            if opened_utc <= when <= closed_utc:
                finished_at.append(when)
                if job["started_at"]:
                    run_s.append((when - datetime.fromisoformat(job["started_at"])).total_seconds())
    finished_at.sort()
    window_min = (closed_utc - opened_utc).total_seconds() / 60
    steady = None
    if len(finished_at) >= 2:
        steady = (len(finished_at) - 1) / ((finished_at[-1] - finished_at[0]).total_seconds() / 60)

    records = list(shared.records)
    errors = [r for r in records if r.status is None or r.status >= 500]
    throttled = [r for r in records if r.status == 429]
    unexpected = [r for r in records if r.status is not None and 400 <= r.status < 500 and r.status != 429]
    polls = [r.latency_s * 1000 for r in records if r.route == "GET /v1/jobs/{id}" and r.status == 200]

    print()
    print(
        f"Window {opened_utc:%Y-%m-%d %H:%M:%S} to {closed_utc:%H:%M:%S} UTC ({closed - shared.started:.1f} s, "
        f"last request {max((r.at_s + r.latency_s for r in records), default=0):.1f} s); "
        f"1-min load {load_start:.1f} at start, {load_end:.1f} at end; {stuck} client threads still running"
    )
    print()
    summary = [
        ["clients", len(keys)],
        ["total requests", len(records)],
        ["requests/s", len(records) / (closed - shared.started)],
        ["errors (5xx or transport)", len(errors)],
        ["429", len(throttled)],
        ["other 4xx", len(unexpected)],
        ["GET /v1/jobs/{id}: count", len(polls)],
        ["GET /v1/jobs/{id}: p50 ms", percentile(polls, 50)],
        ["GET /v1/jobs/{id}: p99 ms", percentile(polls, 99)],
        ["GET /v1/jobs/{id}: max ms", max(polls, default=None)],
        ["jobs submitted", len(shared.jobs)],
        ["jobs finished in the window", len(finished_at)],
        ["jobs/minute finished (1 worker, whole window)", len(finished_at) / window_min],
        ["jobs/minute finished (first to last finish)", steady],
        ["job run time, started to finished, median s", statistics.median(run_s) if run_s else None],
        ["final states of submitted jobs", ", ".join(f"{k} {v}" for k, v in sorted(final.items()))],
    ]
    print(markdown(["figure", "value"], summary))
    print()
    by_route: list[list[Any]] = []
    for route in ("POST /v1/models", "POST /v1/jobs", "GET /v1/jobs/{id}"):
        rs = [r for r in records if r.route == route]
        ok = [r.latency_s * 1000 for r in rs if r.status is not None and r.status < 400]
        statuses: dict[str, int] = {}
        for r in rs:
            statuses[str(r.status or "transport")] = statuses.get(str(r.status or "transport"), 0) + 1
        by_route.append(
            [
                route,
                len(rs),
                ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())),
                percentile(ok, 50),
                percentile(ok, 99),
                statistics.mean(ok) if ok else None,
            ]
        )
    print(markdown(["route", "requests", "statuses", "p50 ms", "p99 ms", "mean ms"], by_route))
    for r in (errors + unexpected)[:20]:
        print(f"  {r.route} at {r.at_s:.1f} s -> {r.status or 'transport error'} after {r.latency_s:.2f} s: {r.detail}")
    target_met = not errors and not unexpected and not stuck
    print()
    print(f"Target (no errors): {'met' if target_met else 'MISSED'}")
    return not target_met


if __name__ == "__main__":
    sys.exit(main())
