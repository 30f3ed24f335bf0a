"""Jobs per minute with one worker and with two, on the multi-host setup.

Each configuration gets fresh shared services (a PostgreSQL database, a Redis database and an S3
bucket on moto's server, `tests.services.shared_services`), the API, and one or two `shears
worker` processes with data folders of their own (they share nothing else, as on separate hosts).
The same batch of prune jobs is submitted at once (builtin:digits, channel 50%, one epoch of
fine-tuning, on the small digits CNN) and the clock runs from the first submit to the last job
reaching a terminal state. Configurations alternate (1, 2, 1, 2, ...) so that a change in the
machine's load hits both; the table gives every round and the median throughput of each.

    .venv/bin/python bench/workers.py [--jobs 6] [--rounds 2] [--write-docs]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown, write_section  # noqa: E402
from tests.services import Service, shared_services, upload_model, wait_for_job  # noqa: E402

SPEC = {
    "dataset_id": "builtin:digits",
    "granularity": "channel",
    "target": {"sparsity": 0.5},
    "finetune": {"epochs": 1},
}


def one_round(workers: int, jobs: int, model: Path, root: Path) -> tuple[float, int]:
    """Seconds for `jobs` jobs with `workers` workers; and how many succeeded."""
    with shared_services() as shared:
        env = {**shared, "SHEARS_QUOTA_RUNNING_JOBS": "100", "SHEARS_QUOTA_QUEUED_JOBS": "100"}
        (root / "host-0").mkdir(parents=True)
        service = Service(root / "host-0", env).start()
        try:
            for n in range(1, workers):
                (root / f"host-{n}").mkdir()
                service.start_worker(env={"SHEARS_DATA_DIR": str(root / f"host-{n}")})
            with service.client(service.new_key()) as client:
                model_id = upload_model(client, model)
                time.sleep(5)  # let every worker finish starting before the clock runs
                start = time.perf_counter()
                ids = [client.post("/v1/jobs", json={**SPEC, "model_id": model_id}).json()["id"] for _ in range(jobs)]
                done = [wait_for_job(client, job_id, timeout=1800) for job_id in ids]
                elapsed = time.perf_counter() - start
        finally:
            service.stop()
    return elapsed, sum(job["status"] == "succeeded" for job in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    from pruning.examples import digits_cnn

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "digits.keras"
        digits_cnn(epochs=8).save(model)
        rows, per_minute = [], {1: [], 2: []}
        for r in range(args.rounds):
            for workers in (1, 2):
                seconds, ok = one_round(workers, args.jobs, model, Path(tmp) / f"r{r}-w{workers}")
                rate = 60 * ok / seconds
                per_minute[workers].append(rate)
                rows.append([r + 1, workers, args.jobs, ok, round(seconds, 1), round(rate, 2)])
                print(f"round {r + 1}: {workers} worker(s): {ok}/{args.jobs} jobs in {seconds:.1f} s = {rate:.2f}/min")
    one, two = statistics.median(per_minute[1]), statistics.median(per_minute[2])
    table = markdown(["round", "workers", "jobs", "succeeded", "seconds", "jobs/min"], rows)
    summary = f"median jobs/min: 1 worker {one:.2f}, 2 workers {two:.2f}, ratio {two / one:.2f}x"
    print(table)
    print(summary)
    if args.write_docs:
        write_section(
            "## Workers on several hosts (issue 8)",
            "## Workers on several hosts (issue 8)\n\n"
            f"`.venv/bin/python bench/workers.py --jobs {args.jobs} --rounds {args.rounds} --write-docs`: "
            "fresh PostgreSQL database, Redis database and S3 bucket (moto) per round; API plus one or two "
            "`shears worker` processes with separate data folders; the same batch of channel-pruning jobs "
            "submitted at once, timed from the first submit to the last terminal state.\n\n"
            f"{table}\n\n{summary}.\n",
        )


if __name__ == "__main__":
    main()
