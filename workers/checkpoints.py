"""A job's checkpoint in the artifact store, under `{tenant}/jobs/{job}/checkpoint/`.

The engine writes the state after each finished round into `<workdir>/checkpoint/<step>/`
(`pruning.checkpoint`); the worker copies it here (the files first, `state.json` last, so the
stored state never names a file that is not there) and drops the files the new state no longer
needs. A retried job gets it back before the engine starts. These objects are never Artifact
rows and never shown to users; they are deleted once the job has finished.
"""

import json
import logging
import re
import shutil
from pathlib import Path

from app.storage import ArtifactStore
from workers.outputs import take_outputs
from workers.sandbox import EngineFailed

log = logging.getLogger("shears.worker")

STATE = "state.json"
# Names the engine chose; anything else in its folder is not copied.
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")


class JobCheckpoint:
    def __init__(self, store: ArtifactStore, tenant_id: str, job_id: str, workdir: Path, taken: Path) -> None:
        """`workdir`: the engine's folder; `taken`: a folder of the worker's the engine cannot see."""
        self.store = store
        self.prefix = f"{tenant_id}/jobs/{job_id}/checkpoint"
        self.local = workdir / "checkpoint"
        self.taken = taken
        self.files: set[str] = set()  # what the stored state names
        self.step = 0

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}"

    def _names(self, state_path: Path) -> set[str]:
        state = json.loads(state_path.read_text())
        names = {str(n) for n in state.get("files", [])}
        if not all(SAFE_NAME.match(n) for n in names) or not isinstance(state.get("step"), int):
            raise ValueError(f"unexpected checkpoint state: {sorted(names)}")
        self.step = state["step"]
        return names

    def fetch(self, into: Path) -> bool:
        """Copy the stored checkpoint into `into`; False if there is none (or it is incomplete)."""
        if not self.store.exists(self._key(STATE)):
            return False
        into.mkdir(parents=True, exist_ok=True)
        try:
            with self.store.local_copy(self._key(STATE)) as src:
                shutil.copyfile(src, into / STATE)
            names = self._names(into / STATE)
            for name in names:
                with self.store.local_copy(self._key(name)) as src:
                    shutil.copyfile(src, into / name)
        except (OSError, ValueError):
            log.warning("the checkpoint under %s is incomplete; starting afresh", self.prefix, exc_info=True)
            shutil.rmtree(into, ignore_errors=True)
            return False
        self.files = names
        return True

    def save(self, step: int) -> None:
        """Store the checkpoint the engine wrote after round `step`, then free its local folder.

        The engine is still running: each file is taken as outputs are (`workers.outputs`: never
        through a link, a regular file with one link) into `taken`, a folder it cannot see, and
        stored from there; a link or a file swapped in meanwhile is refused, not followed."""
        here = f"{self.local.name}/{step}"
        copies = self.taken / str(step)
        try:
            state = take_outputs(self.local.parent, (f"{here}/{STATE}",), copies)[f"{here}/{STATE}"]
            names = self._names(state)
            present: dict[str, Path] = {}
            for name in sorted(names):
                try:
                    present.update(take_outputs(self.local.parent, (f"{here}/{name}",), copies))
                except EngineFailed:
                    if name not in self.files:  # not written this round nor stored before
                        raise
            for name in sorted(names):
                if f"{here}/{name}" in present:
                    self.store.put_file(self._key(name), present[f"{here}/{name}"])
            self.store.put_file(self._key(STATE), state)
        except EngineFailed as exc:
            raise ValueError(f"the checkpoint of round {step} was refused: {exc.message}") from None
        finally:
            shutil.rmtree(copies, ignore_errors=True)
        for name in self.files - names:
            self.store.delete(self._key(name))
        self.files = names
        shutil.rmtree(self.local / str(step), ignore_errors=True)

    def delete(self) -> None:
        """Remove the stored checkpoint (the job is finished)."""
        for name in [STATE, *self.files]:
            self.store.delete(self._key(name))
        self.store.delete(self.prefix)  # the folder, and anything a crashed attempt left in it
        self.files = set()
