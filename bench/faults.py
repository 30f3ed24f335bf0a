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

The shared servers and the service are bench/faults_harness.py; the scenarios bench/faults_redis.py (a)
and bench/faults_postgres.py (b).
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown  # noqa: E402
from bench.faults_harness import (  # noqa: E402
    pg_cluster,
    pg_up,
    redis_up,
    start_redis,
)
from bench.faults_postgres import (  # noqa: E402
    scenario_postgres,
)
from bench.faults_redis import (  # noqa: E402
    scenario_redis,
)
from bench.load import git_commit, train_tiny_model  # noqa: E402


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
