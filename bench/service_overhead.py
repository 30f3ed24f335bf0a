"""What the service costs over calling the engine: one prune job through HTTP vs `pruning.run.run`.

The same spec (builtin:digits, sparsity 0.5, 2 fine-tuning epochs) on the same trained `digits_cnn`:

- service: upload the `.keras` over HTTP, submit the job, poll until it succeeds, download
  `model.tflite` and the report, against a real API + one Celery worker on the embedded default
  (SQLite, kombu filesystem broker). Each job runs in a fresh worker child, which imports TensorFlow.
- direct, fresh process: `python -c` that imports the engine and calls `run(...)`, so TensorFlow's
  import is paid on both sides. This is the baseline of the target.
- direct, in process: `run(...)` in this process, TensorFlow already imported (for reference).
(Uploads of Keras models no longer start a TensorFlow subprocess: the API reads a model's shape and
size from its config and weights file.)

The paths are interleaved (order rotated each round) and the median of each is compared.
Target: service (upload to downloads) <= 1.10 * direct (fresh process) + 3 s.

    .venv/bin/python bench/service_overhead.py [--runs 5]
"""

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import markdown  # noqa: E402
from tests.services import Service, wait_for_job  # noqa: E402

JOB_SPEC: dict[str, Any] = {"target": {"sparsity": 0.5}, "finetune": {"epochs": 2}}
DATASET = "builtin:digits"
TARGET_FACTOR = 1.10
TARGET_SLACK_S = 3.0

DIRECT = """
import json, sys, time
t0 = time.perf_counter()
from pathlib import Path
from pruning.datasets import digits
from pruning.run import run
from pruning.spec import PruneSpec
t1 = time.perf_counter()
result = run(Path(sys.argv[1]), digits(), PruneSpec.from_job_spec(json.loads(sys.argv[3])), Path(sys.argv[2]))
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "run_s": t2 - t1, "accuracy": result.report["accuracy"],
                  "overall": result.report["sparsity"]["overall"], "tflite_bytes": result.tflite_path.stat().st_size}))
"""


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def service_once(service: Service, key: str, model_path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    with service.client(key) as client:
        with model_path.open("rb") as f:
            upload = client.post("/v1/models", files={"file": ("model.keras", f)})
        if upload.status_code not in (200, 201):  # 200: the same bytes were already uploaded (dedupe)
            raise RuntimeError(f"upload failed: {upload.status_code} {upload.text}")
        uploaded = time.perf_counter()
        submitted = client.post("/v1/jobs", json={"model_id": upload.json()["id"], "dataset_id": DATASET, **JOB_SPEC})
        if submitted.status_code != 202:
            raise RuntimeError(f"submit failed: {submitted.status_code} {submitted.text}")
        job = wait_for_job(client, submitted.json()["id"], timeout=600)
        if job["status"] != "succeeded":
            raise RuntimeError(f"job did not succeed: {job}")
        done = time.perf_counter()
        tflite = client.get(f"/v1/jobs/{job['id']}/model.tflite")
        report = client.get(f"/v1/jobs/{job['id']}/report")
        if tflite.status_code != 200 or report.status_code != 200:
            raise RuntimeError(f"download failed: {tflite.status_code} {report.status_code}")
    finished = time.perf_counter()
    body = report.json()
    return {
        "wall_s": finished - started,
        "upload_status": upload.status_code,
        "upload_s": uploaded - started,
        "submit_to_done_s": done - uploaded,
        "queued_s": _ts(job["started_at"]) - _ts(job["created_at"]),
        "running_s": _ts(job["finished_at"]) - _ts(job["started_at"]),
        "download_s": finished - done,
        "accuracy_after": body["accuracy"]["after"],
        "overall": body["sparsity"]["overall"],
        "tflite_bytes": len(tflite.content),
        "spec": body["spec"],
    }


def direct_fresh_once(model_path: Path, workdir: Path) -> dict[str, Any]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", DIRECT, str(model_path), str(workdir), json.dumps(JOB_SPEC)],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=False,
        timeout=600,
    )
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise RuntimeError(f"direct run failed ({out.returncode}): {out.stderr.decode()[-2000:]}")
    child = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return {
        "wall_s": wall,
        "import_s": child["import_s"],
        "run_s": child["run_s"],
        "accuracy_after": child["accuracy"]["after"],
        "overall": child["overall"],
        "tflite_bytes": child["tflite_bytes"],
    }


def direct_in_process_once(model_path: Path, workdir: Path) -> dict[str, Any]:
    from pruning.datasets import digits
    from pruning.run import run
    from pruning.spec import PruneSpec

    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the TFLite converter prints its SavedModel
        result = run(model_path, digits(), PruneSpec.from_job_spec(JOB_SPEC), workdir)
    wall = time.perf_counter() - started
    return {
        "wall_s": wall,
        "run_s": wall,
        "accuracy_after": result.report["accuracy"]["after"],
        "overall": result.report["sparsity"]["overall"],
        "tflite_bytes": result.tflite_path.stat().st_size,
    }


PATHS = ("service", "direct, fresh process", "direct, in process")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each path (default 5)")
    parser.add_argument("--model-epochs", type=int, default=30, help="training epochs of the digits_cnn (default 30)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from pruning.examples import digits_cnn
    from pruning.spec import PruneSpec

    load_start = os.getloadavg()[0]
    results: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    with tempfile.TemporaryDirectory(prefix="shears-bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        model_path = tmp / "digits.keras"
        digits_cnn(epochs=args.model_epochs).save(model_path)
        service = Service(tmp / "service", {}).start()
        try:
            runners = {
                # A new tenant per run (key made before the clock starts): every upload is a first
                # upload, checked and described by the API, not answered from the per-tenant dedupe.
                "service": lambda i: service_once(service, service.new_key(), model_path),
                "direct, fresh process": lambda i: direct_fresh_once(model_path, tmp / f"fresh{i}"),
                "direct, in process": lambda i: direct_in_process_once(model_path, tmp / f"inproc{i}"),
            }
            for i in range(args.runs):
                order = PATHS[i % len(PATHS) :] + PATHS[: i % len(PATHS)]
                for path in order:
                    result = runners[path](i)
                    result["round"] = i + 1
                    results[path].append(result)
                    print(f"round {i + 1}: {path}: {result['wall_s']:.2f} s", flush=True)
        finally:
            service.stop()

    want_spec = PruneSpec.from_job_spec(JOB_SPEC).to_dict()
    spec_same = all(r["spec"] == want_spec for r in results["service"])

    runs_rows = []
    for path in PATHS[:3]:
        for r in results[path]:
            runs_rows.append(
                [
                    r["round"],
                    path,
                    r["wall_s"],
                    r.get("upload_status"),
                    r.get("upload_s"),
                    r.get("queued_s"),
                    r.get("running_s"),
                    r.get("download_s"),
                    r.get("import_s"),
                    r.get("run_s"),
                    f"{r['accuracy_after']:.4f}",
                    f"{r['overall']:.3f}",
                    r["tflite_bytes"],
                ]
            )
    medians = {p: statistics.median(r["wall_s"] for r in results[p]) for p in PATHS}
    job_only = [r["wall_s"] - r["upload_s"] for r in results["service"]]
    job_only_median = statistics.median(job_only)
    direct = medians["direct, fresh process"]
    limit = TARGET_FACTOR * direct + TARGET_SLACK_S
    met = medians["service"] <= limit and spec_same

    print()
    print("Every run (seconds; service breakdown: upload, queued = created->started, running = started->finished):")
    print()
    print(
        markdown(
            [
                "round",
                "path",
                "wall s",
                "upload HTTP",
                "upload s",
                "queued s",
                "running s",
                "poll+download s",
                "import s",
                "run() s",
                "val acc after",
                "sparsity",
                "tflite bytes",
            ],
            runs_rows,
        )
    )
    print()

    def line(name: str, values: list[float], ratio: float | None) -> list[Any]:
        return [name, ", ".join(f"{v:.2f}" for v in values), statistics.median(values), min(values), ratio]

    walls = {p: [r["wall_s"] for r in results[p]] for p in PATHS}
    summary = [line(p, walls[p], medians["service"] / medians[p]) for p in PATHS[:3]]
    summary.insert(1, line("service, job only (submit to downloads)", job_only, None))
    print(markdown(["path", "wall s per run", "median s", "best s", "service / this (medians)"], summary))
    print()
    print(
        f"target: service <= {TARGET_FACTOR:.2f} x direct (fresh process) + {TARGET_SLACK_S:.0f} s"
        f" = {limit:.2f} s; service median {medians['service']:.2f} s"
        f" (ratio {medians['service'] / direct:.2f}, overhead {medians['service'] - direct:+.2f} s): "
        + ("MET" if met else "MISSED")
    )
    paired = [sv - d for sv, d in zip(walls["service"], walls["direct, fresh process"], strict=True)]
    best_limit = TARGET_FACTOR * min(walls["direct, fresh process"]) + TARGET_SLACK_S
    print(
        f"noise check: service - direct (fresh process) in the same round: {', '.join(f'{v:+.2f}' for v in paired)}"
        f" s (median {statistics.median(paired):+.2f} s); best of {args.runs}: service {min(walls['service']):.2f} s"
        f" vs limit {best_limit:.2f} s from the best direct run"
    )
    print(
        f"for reference: service job only (submit to downloads) {job_only_median:.2f} s,"
        f" ratio {job_only_median / direct:.2f} to direct (fresh process), {job_only_median - direct:+.2f} s;"
        f" upload median {statistics.median(r['upload_s'] for r in results['service']):.2f} s"
    )
    print(f"1-min load average: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end ({os.cpu_count()} cores)")
    if not spec_same:
        print("  - the service ran a different spec than the direct path; the comparison is void")

    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "service_overhead.json").write_text(
        json.dumps(
            {
                "results": results,
                "medians_s": medians,
                "job_only_median_s": job_only_median,
                "paired_overhead_s": paired,
                "best_s": {p: min(walls[p]) for p in PATHS},
                "best_limit_s": best_limit,
                "limit_s": limit,
                "met": met,
                "spec": want_spec,
            },
            indent=2,
            default=str,
        )
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
