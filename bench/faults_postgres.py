"""bench/faults.py, scenario (b): PostgreSQL unreachable for 10 s under load (see its docstring)."""

import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown  # noqa: E402
from bench.faults_harness import (  # noqa: E402
    JOB_SPEC,
    PG_DOWN_S,
    log_lines,
    own_redis_db,
    pg_cluster,
    pg_up,
    service_on,
    upload,
)
from bench.load import scan_logs  # noqa: E402
from tests.faults import (  # noqa: E402
    TERMINAL,
    Hit,
    Traffic,
    get_job,
    job_events,
    status_events,
)

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
