"""The protocol between the API and its upload checkers (`python -m pruning.inspect`, `pruning.check_dataset`).

A checker is started by the one launcher (`contract.jail`) with its file on the command line and
answers with one message, its last line on stdout: `Checked` (what it read), `Refused` (the file's
fault, with a code the caller can act on: the engine's `Failed` message; 415 for
`unsupported_media_type`, else 400) or `Unavailable` (the server cannot check safely now).
Messages carry the engine protocol's version `v` (`contract.engine.PROTOCOL`); a last line that is not
one of them (a parser crashed, a limit killed the process) means the file could not be read.
"""

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from contract.engine import Failed as Refused
from contract.engine import Versioned


class Checked(Versioned):
    """The file is fine: `result` is the model's description or the dataset's summary."""

    type: Literal["checked"] = "checked"
    result: dict[str, Any]


class Unavailable(Versioned):
    """The checker could not confine itself: a setup problem of the server (503), not the file's fault."""

    type: Literal["unavailable"] = "unavailable"
    message: str


Answer = Annotated[Checked | Refused | Unavailable, Field(discriminator="type")]
_ANSWER: TypeAdapter[Answer] = TypeAdapter(Answer)
__all__ = ["EXIT", "Answer", "Checked", "Refused", "Unavailable", "answer", "read_answer"]
EXIT = {"checked": 0, "error": 3, "unavailable": 5}
"""The checker's exit code for each answer, for a human reading a process list; the API reads the answer."""


def answer(message: Checked | Refused | Unavailable) -> str:
    """The checker's last line."""
    return message.model_dump_json() + "\n"


def read_answer(stdout: str) -> Checked | Refused | Unavailable | None:
    """The answer on the last line of a checker's output; None when that line is not one."""
    # lines end at "\n" only: the JSON may carry U+2028 and the like raw (a class folder's name)
    last = stdout.rstrip("\n").rsplit("\n", 1)[-1]
    try:
        return _ANSWER.validate_json(last)
    except ValidationError:
        return None
