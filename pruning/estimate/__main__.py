"""`python -m pruning.estimate calibrate-host`: calibrate the `host` tables on this CPU from single-op
micro-benchmarks and cache them for its fingerprint (contract.host_tables). (To estimate a model on
devices, use `shears profile MODEL`.)"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from contract import host_tables
from pruning.estimate.calibrate import DEFAULT_BUDGET_S, CalibrationError, calibrate_host


def _say(msg: str) -> None:
    sys.stderr.write(msg + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pruning.estimate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cal = sub.add_parser("calibrate-host", help="calibrate the host tables on this CPU and cache them")
    cal.add_argument("--out", default=None, help="write here instead of the cache for this CPU's fingerprint")
    cal.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="time allowed for timing cases")
    cal.add_argument("--quick", action="store_true", help="one case per class, short sweep (smoke check)")
    cal.add_argument("--if-missing", action="store_true", help="do nothing when this CPU already has tables")
    cal.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.if_missing and not args.out and not host_tables.needs_calibration():
        _say(f"host tables for {host_tables.fingerprint()['id']} already cached")
        return 0
    log: Callable[[str], None] = (lambda _msg: None) if args.quiet else _say
    try:
        data = calibrate_host(log=log, quick=args.quick, budget_s=args.budget_s)
    except CalibrationError as exc:
        _say(f"calibration failed: {exc}")
        return 2
    except Exception as exc:  # noqa: BLE001 - a reason, not a traceback, for the operator
        _say(f"calibration failed: {type(exc).__name__}: {exc}")
        return 2
    path = host_tables.store(data, Path(args.out) if args.out else None)
    sys.stdout.write(f"host tables for {data['machine']['fingerprint']['id']} written to {path} "
                     f"({data['calibration']['seconds']} s)\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
