"""What a uid of its own costs a confined child (issue 15): the bare start of `python -c pass`
through `contract.jail.launch`, with the uid switch (root: bubblewrap binds as root, setpriv drops to
a uid from SHEARS_SANDBOX_UIDS, the folder is chowned) and without it (SHEARS_SANDBOX_UIDS=off: the
user namespace maps uid 65534 to root), interleaved, median of `--repeats`. Needs root and bubblewrap.

    .venv/bin/python bench/sandbox_uid_overhead.py
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from contract import jail  # noqa: E402
from workers.sandbox import engine_env, engine_limits  # noqa: E402


def _once(switch: bool) -> float:
    os.environ["SHEARS_SANDBOX_UIDS"] = "" if switch else "off"
    with tempfile.TemporaryDirectory(prefix="shears-bench-uid-") as work:
        workdir = Path(work)
        (workdir / "home").mkdir()
        start = time.perf_counter()
        launch = jail.launch([sys.executable, "-c", "pass"], workdir=workdir, limits=engine_limits(60, None))
        done = subprocess.run(launch.argv, env=engine_env(workdir / "home"), preexec_fn=launch.preexec, timeout=60)
        elapsed = time.perf_counter() - start
        if done.returncode != 0 or (launch.ids is None) == switch:
            raise RuntimeError(f"switch={switch}: exit {done.returncode}, ids {launch.ids}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if os.geteuid() != 0 or jail.probe().level != "namespaces":
        sys.exit("needs root and the namespaces level")
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.repeats):
        for switch in (False, True):
            times[switch].append(_once(switch))
    off, on = statistics.median(times[False]), statistics.median(times[True])
    load = os.getloadavg()[0]
    print(
        f"bare start, median of {args.repeats}: uid 0 mapped {off:.3f} s, own uid {on:.3f} s, "  # noqa: T201
        f"added {on - off:+.3f} s (load average {load:.1f})"
    )


if __name__ == "__main__":
    main()
