"""`python -m pruning.estimate calibrate-host`: re-derive pruning/profiles/host.json from single-op
micro-benchmarks. (To estimate a model on devices, use `shears profile MODEL`.)"""

import argparse
import json
from pathlib import Path

from pruning.estimate.calibrate import calibrate_host


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pruning.estimate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    cal = sub.add_parser("calibrate-host", help="re-derive pruning/profiles/host.json from micro-benchmarks")
    cal.add_argument("--out", default=str(Path(__file__).parent.parent / "profiles" / "host.json"))
    cal.add_argument("--keep-band", action="store_true", help="keep error_band from the existing file")
    args = parser.parse_args(argv)
    data = calibrate_host()
    out = Path(args.out)
    if args.keep_band and out.exists():
        data["profile"]["error_band"] = json.loads(out.read_text())["profile"]["error_band"]
    out.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
