"""What the sandbox adds to a job and to an upload check: median of N, with vs without, interleaved.

"Without" is the level before the launcher (`contract.jail` level `seccomp`: the engine's own filter
and rlimits); "with" is the level this host gives (`namespaces`: bubblewrap). Three measurements,
each through `jail.launch` with the engine's environment:

- bare start: `python -c pass` (the launcher's own fixed cost);
- upload check: `python -m pruning.inspect` on a small Keras model (what the API runs per upload);
- job: `python -m pruning.job` pruning that model once without fine-tuning (import, prune, export,
  measure), the shortest real job.

    .venv/bin/python bench/sandbox_overhead.py [--repeats 10] [--write]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import markdown, write_section  # noqa: E402
from contract import jail  # noqa: E402
from workers.sandbox import engine_env, engine_limits  # noqa: E402


def _run(argv: list[str], workdir: Path, level: str, readable: tuple[Path, ...] = ()) -> float:
    scratch = workdir / "home"
    scratch.mkdir(parents=True, exist_ok=True)
    launch = jail.launch(
        argv, workdir=workdir, chdir=scratch, limits=engine_limits(600, None), readable=readable, level=level
    )
    start = time.perf_counter()
    done = subprocess.run(
        launch.argv, cwd=scratch, env=engine_env(scratch), preexec_fn=launch.preexec, capture_output=True, timeout=600
    )
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv[-2:]} at {level}: {done.returncode} {done.stderr[-800:]!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--write", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args()
    best = jail.probe().level
    if best != "namespaces":
        sys.exit(f"this host offers {best!r}, not the namespaces level: nothing to compare")
    root = Path(tempfile.mkdtemp(prefix="shears-bench-sandbox-"))
    from pruning.examples import digits_cnn

    model = root / "digits.keras"
    digits_cnn(epochs=1).save(model)
    py = sys.executable

    def bare(work: Path) -> list[str]:
        return [py, "-c", "pass"]

    def inspect(work: Path) -> list[str]:
        shutil.copyfile(model, work / "m.keras")
        return [py, "-m", "pruning.inspect", str(work / "m.keras")]

    def job(work: Path) -> list[str]:
        shutil.copyfile(model, work / "m.keras")
        request = {
            "spec": {"target": {"sparsity": 0.3}, "finetune": {"epochs": 0}},
            "data": "builtin:digits",
            "model": str(work / "m.keras"),
            "out": str(work / "out"),
            "kind": "prune",
        }
        (work / "request.json").write_text(json.dumps(request))
        return [py, "-m", "pruning.job", str(work / "request.json")]

    cases: dict[str, Callable[[Path], list[str]]] = {"bare start": bare, "upload check": inspect, "job": job}
    times: dict[tuple[str, str], list[float]] = {}
    for i in range(args.repeats):
        for name, make in cases.items():
            for level in ("seccomp", best) if i % 2 == 0 else (best, "seccomp"):  # alternate the order
                work = Path(tempfile.mkdtemp(dir=root))
                times.setdefault((name, level), []).append(_run(make(work), work, level))
                shutil.rmtree(work)
        print(f"round {i + 1}/{args.repeats} done", file=sys.stderr)
    rows = []
    for name in cases:
        without = statistics.median(times[(name, "seccomp")])
        with_ = statistics.median(times[(name, best)])
        rows.append([name, without, with_, with_ - without, f"{100 * (with_ / without - 1):+.0f}%"])
    table = markdown(["run", "without (seccomp only) s", "with (bubblewrap) s", "added s", "ratio"], rows)
    print(table)
    shutil.rmtree(root, ignore_errors=True)
    if args.write:
        text = (
            "## Sandbox overhead (issue 15)\n\n"
            f"Median of {args.repeats} runs each, with and without interleaved in one process "
            '(`.venv/bin/python bench/sandbox_overhead.py --write`). "Without" is the engine\'s own seccomp '
            'filter and rlimits (the confinement before `contract.jail`), "with" is bubblewrap\'s namespaces '
            "(the `namespaces` level, what `SHEARS_SANDBOX=strict` requires). Measured on the shared 2-core "
            "development machine with other agents' work running: the absolute times are noisy; the added "
            "time is the difference of medians. Target: under 0.5 s per job.\n\n" + table + "\n"
        )
        write_section("## Sandbox overhead (issue 15)", text)


if __name__ == "__main__":
    main()
