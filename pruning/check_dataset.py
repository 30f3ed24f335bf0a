"""`python -m pruning.check_dataset IN OUT OPTIONS_JSON [MAX_TOTAL]`: check an uploaded dataset and convert it.

Run by the API in a subprocess with no credentials (as `pruning.inspect` is for models); it confines
itself before NumPy or any decoder is imported (`pruning.convert` does the work). Exit 0 with the
summary as JSON on stdout, 3 with `{"code", "message"}`, 5 when it cannot confine itself.
"""

import json
import os
import sys
from pathlib import Path

from contract.errors import PruningError


def main() -> int:
    if os.environ.get("SHEARS_ENGINE_SECCOMP", "true").lower() not in ("0", "false", "no", "off"):
        from pruning.confine import ConfinementUnavailable, confine

        try:
            confine()
        except ConfinementUnavailable as exc:
            message = f"cannot forbid the dataset check child processes ({exc}); set SHEARS_ENGINE_SECCOMP=false"
            sys.stdout.write(json.dumps({"code": "sandbox_unavailable", "message": message}) + "\n")
            return 5
    from pruning.convert import check

    try:
        max_total = int(sys.argv[4]) if len(sys.argv) > 4 else 8 << 30
        summary = check(Path(sys.argv[1]), Path(sys.argv[2]), json.loads(sys.argv[3] or "{}"), max_total)
    except PruningError as exc:
        sys.stdout.write(json.dumps({"code": exc.code, "message": exc.message}) + "\n")
        return 3
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        sys.stdout.write(json.dumps({"code": "invalid_dataset", "message": f"unreadable: {exc}"[:400]}) + "\n")
        return 3
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # options of the wrong type, odd layouts
        message = f"the dataset or its options could not be used: {type(exc).__name__}: {exc}"[:400]
        sys.stdout.write(json.dumps({"code": "invalid_dataset", "message": message}) + "\n")
        return 3
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
