"""bench/faults.py, scenario (a): Redis restarted with jobs queued and running (see its docstring)."""

import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown  # noqa: E402
from bench.faults_harness import (  # noqa: E402
    JOB_SPEC,
    Watcher,
    log_lines,
    own_redis_db,
    redis_queue,
    redis_up,
    restart_redis,
    service_on,
    upload,
)
from bench.load import scan_logs  # noqa: E402
from tests.faults import (  # noqa: E402
    TERMINAL,
    artifact_sets,
    get_job,
    job_events,
    status_events,
)

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
