"""Checkpoints of a run: the state after each finished prune -> fine-tune round, to resume from.

After round k the engine writes `state.json` and the files it names into a folder of its own
(`<checkpoint>/<k>/`) and announces it; the worker copies the folder to the artifact store and may
remove it. `state.json` lists every file the checkpoint needs, including ones written by an earlier
round (the dense baseline's export, written once). A retried job gets such a folder back as
`resume` and continues after round k: the model (weights and masks, or the narrowed model of
channel pruning), the rounds so far and the snapshot kept by the accuracy guard come from it;
everything else is recomputed from the original model, which gives the same values.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from contract.engine import Checkpoint
from contract.errors import PruningError
from pruning.loading import load_model
from pruning.strategies import ChannelPruner, MaskPruner, Snapshot

STATE = "state.json"
BASELINE = "baseline.tflite"


@dataclass
class Resumed:
    step: int
    rounds: list[dict[str, Any]]
    kept: Snapshot
    model: keras.Model


class Checkpoints:
    """Writes one checkpoint per finished round under `folder` and announces each with `announce`."""

    def __init__(self, folder: Path, announce: Callable[[Checkpoint], None], resume: Path | None = None) -> None:
        self.folder, self.announce, self.resume_dir = folder, announce, resume
        self._baseline_stored = resume is not None

    def resume(self, pruner: MaskPruner | ChannelPruner) -> Resumed | None:
        """The state of the last finished round, restored into `pruner`; None when starting afresh."""
        if self.resume_dir is None:
            return None
        src = self.resume_dir
        try:
            state = json.loads((src / STATE).read_text())
            if state["pruner"] == "channel":
                model = pruner.restore(load_model(src / state["model"]))
            else:
                with (
                    np.load(src / state["weights"], allow_pickle=False) as w,
                    np.load(src / state["masks"], allow_pickle=False) as m,
                ):
                    weights = [w[f"arr_{i}"] for i in range(len(w.files))]
                    kept_masks = {path: m[f"m{i}"] for i, path in enumerate(state["mask_paths"])}
                model = pruner.restore((weights, kept_masks))
        except (OSError, KeyError, ValueError) as exc:
            raise PruningError("checkpoint_unreadable", f"the job's checkpoint cannot be read: {exc}") from exc
        kept = Snapshot(state["step"], state["sparsity"], state["metrics"], pruner.snapshot(model))
        return Resumed(state["step"], state["rounds"], kept, model)

    def baseline(self) -> bytes | None:
        """The dense baseline's export from the checkpoint, so a resumed run need not convert it again."""
        path = self.resume_dir / BASELINE if self.resume_dir else None
        return path.read_bytes() if path and path.is_file() else None

    def save(
        self,
        kept: Snapshot,
        rounds: list[dict[str, Any]],
        steps: int,
        pruner: MaskPruner | ChannelPruner,
        model: keras.Model,
        baseline_tflite: bytes,
    ) -> None:
        """Record the state after round `kept.step` (the model the next round starts from)."""
        step = kept.step
        out = self.folder / str(step)
        out.mkdir(parents=True, exist_ok=True)
        state: dict[str, Any] = {
            "stage": "finetuning",
            "step": step,
            "steps": steps,
            "sparsity": kept.sparsity,
            "metrics": kept.metrics,
            "rounds": rounds,
            "pruner": "channel" if isinstance(pruner, ChannelPruner) else "mask",
        }
        if isinstance(pruner, ChannelPruner):
            state["model"] = f"r{step}-model.keras"
            model.save(out / state["model"])
        else:
            weights, masks = kept.state
            state["weights"], state["masks"] = f"r{step}-weights.npz", f"r{step}-masks.npz"
            state["mask_paths"] = list(masks)
            np.savez(out / state["weights"], *weights)
            np.savez(out / state["masks"], **{f"m{i}": mask for i, mask in enumerate(masks.values())})
        if not self._baseline_stored:
            (out / BASELINE).write_bytes(baseline_tflite)
            self._baseline_stored = True
        state["files"] = sorted({*(state[k] for k in ("model", "weights", "masks") if k in state), BASELINE})
        (out / STATE).write_text(json.dumps(state))
        self.announce(Checkpoint(step=step, steps=steps))
