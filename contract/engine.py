"""The protocol between a worker and its engine process: one request file in, JSON lines out.

The worker writes an `EngineRequest` to `request.json` and starts `python -m pruning.job` on it in
the sandbox (`contract.jail`); the engine answers on a private pipe with one message a line:
`Progress`, `Log`, `Checkpoint`, then exactly one of `Failed` or `Done`. Every message carries the
protocol version `v`; a request or message of another version is refused, not guessed at.
"""

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL: Literal[1] = 1
"""Bump when a field changes meaning or a required one is added; the worker and its engine ship together."""


class ProgressThrottle:
    """Which progress updates to pass on: every change of stage and every stage's end always, and within
    a stage at most one every `every_s` seconds. The engine throttles what it writes to the pipe, the
    worker what it writes to the database; both with this."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._stage, self._at = "", 0.0

    def due(self, stage: str, fraction: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if stage == self._stage and now - self._at < self.every_s and fraction < 1.0:
            return False
        self._stage, self._at = stage, now
        return True


class Versioned(BaseModel):
    """A message of the protocol: frozen, no unknown fields, and the version it speaks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = PROTOCOL


class EngineRequest(Versioned):
    """One engine run: its inputs are files named here, its outputs go to the folder `out`."""

    kind: Literal["prune", "profile"]
    spec: dict[str, Any] = Field(description="the job spec as stored on the job's row (contract.spec.JobSpec, JSON)")
    model: str = Field(description="the model file (.keras, .h5 or .tflite)")
    data: str | None = Field(None, description="an .npz file, or builtin:digits / builtin:har")
    out: str
    checkpoint: str | None = Field(None, description="prune: write a checkpoint of each finished round here")
    resume: str | None = Field(None, description="prune: an earlier attempt's checkpoint to resume from")


class Progress(Versioned):
    """The engine is at `stage`, `progress` of the way through it (0..1); at most one every 0.1 s a stage."""

    type: Literal["progress"] = "progress"
    stage: str
    progress: float


class Log(Versioned):
    """A line for the job's log."""

    type: Literal["log"] = "log"
    message: str


class Checkpoint(Versioned):
    """The state after round `step` of `steps` is written in `<checkpoint>/<step>/`."""

    type: Literal["checkpoint"] = "checkpoint"
    stage: str = "finetuning"
    step: int
    steps: int


class Done(Versioned):
    """The run finished and its files are in `out`; the last message."""

    type: Literal["done"] = "done"


class Failed(Versioned):
    """The run failed with a code the caller can act on; the last message."""

    type: Literal["error"] = "error"
    code: str
    message: str


Message = Annotated[Progress | Log | Checkpoint | Failed | Done, Field(discriminator="type")]
_MESSAGE: TypeAdapter[Message] = TypeAdapter(Message)


def encode(message: Versioned) -> str:
    """One line of the protocol."""
    return message.model_dump_json() + "\n"


def decode(line: str) -> Message | None:
    """The message on `line`; None for a line that is not one (anything else the process printed)."""
    if not line.startswith("{"):
        return None
    try:
        return _MESSAGE.validate_json(line)
    except ValidationError:
        return None
