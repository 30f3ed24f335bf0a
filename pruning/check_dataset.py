"""`python -m pruning.check_dataset IN OUT OPTIONS_JSON [MAX_TOTAL]`: check an uploaded dataset and convert it.

Run by the API in a subprocess with no credentials (as `pruning.inspect` is for models); it confines
itself before NumPy or any decoder is imported (`pruning.convert` does the work) and answers with the
summary in the checkers' protocol (`contract.checks`, through `pruning.checker`).
"""

import json
import sys
from pathlib import Path
from typing import Any


def check() -> dict[str, Any]:
    from pruning.convert import check

    max_total = int(sys.argv[4]) if len(sys.argv) > 4 else 8 << 30
    return check(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3] or "{}"), max_total)


def main() -> int:
    from pruning.checker import run

    # A JSON error is a ValueError: options that do not parse are the caller's fault, as bad files are.
    return run("dataset", check, unreadable="invalid_dataset")


if __name__ == "__main__":
    sys.exit(main())
