"""What every upload checker does around its own work: confine itself, then answer in the protocol.

`python -m pruning.inspect` (models) and `python -m pruning.check_dataset` (datasets) are started by
the API with an untrusted file; each installs the engine's seccomp filter (`pruning.confine`) before
any parser reads it, and answers with one `contract.checks` message on its last line of stdout.
"""

import os
import sys
from collections.abc import Callable
from typing import Any

from contract.checks import EXIT, Checked, Refused, Unavailable, answer
from contract.errors import PruningError


def run(what: str, work: Callable[[], dict[str, Any]], unreadable: str | None = None) -> int:
    """Confine this process, run `work` and answer with its result; a `PruningError` is a refusal
    with its code. With `unreadable` set, an error a bad file or bad options make the readers raise
    (a decode, type or index error) is a refusal with that code too, not a crash."""
    if os.environ.get("SHEARS_ENGINE_SECCOMP", "true").lower() not in ("0", "false", "no", "off"):
        from pruning.confine import ConfinementUnavailable, confine

        try:
            confine()  # as the engine does: no child processes, whatever the file makes the parsers do
        except ConfinementUnavailable as exc:
            why = f"cannot forbid the {what} check child processes ({exc}); set SHEARS_ENGINE_SECCOMP=false"
            return _say(Unavailable(message=why))
    try:
        result = work()
    except PruningError as exc:
        return _say(Refused(code=exc.code, message=exc.message))
    except (UnicodeDecodeError, OSError, ValueError, TypeError, KeyError, IndexError) as exc:
        if unreadable is None:
            raise
        message = f"the {what} or its options could not be used: {type(exc).__name__}: {exc}"[:400]
        return _say(Refused(code=unreadable, message=message))
    return _say(Checked(result=result))  # a result that does not serialise is this checker's bug: it raises


def _say(message: Checked | Refused | Unavailable) -> int:
    sys.stdout.write(answer(message))
    return EXIT[message.type]
