"""The engine's checkpoints: a run resumed after round k ends exactly where an uninterrupted run ends."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest


def _engine(tmp_path: Path, name: str, model: Path, granularity: str, resume: Path | None = None) -> dict[str, Any]:
    """One `python -m pruning.job` run (the worker's entry, confined) with checkpoints on."""
    folder = tmp_path / name
    folder.mkdir()
    request: dict[str, Any] = {
        "spec": {
            "granularity": granularity,
            "target": {"sparsity": 0.6},
            "schedule": {"kind": "polynomial", "steps": 3},
            "finetune": {"epochs": 1, "batch_size": 64},  # one epoch a round: the resume path is the same
        },
        "data": "builtin:digits",
        "model": str(model),
        "out": str(folder / "out"),
        "kind": "prune",
        "checkpoint": str(folder / "checkpoint"),
    }
    if resume is not None:
        request["resume"] = str(resume)
    (folder / "request.json").write_text(json.dumps(request))
    proc = subprocess.run(
        [sys.executable, "-m", "pruning.job", str(folder / "request.json")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    messages = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, (messages[-1:], proc.stderr[-2000:])
    report = json.loads((folder / "out" / "report.json").read_text())
    report["_checkpoints"] = [m["step"] for m in messages if m["type"] == "checkpoint"]
    report["_folder"] = str(folder)
    return report


@pytest.mark.parametrize("granularity", ["unstructured", "channel"])
def test_a_run_resumed_after_round_one_matches_an_uninterrupted_run(
    granularity: str, digits_model: Path, tmp_path: Path
) -> None:
    import keras

    whole = _engine(tmp_path, "whole", digits_model, granularity)
    assert whole["_checkpoints"] == [1, 2, 3]
    assert "resumed_from" not in whole
    # What the worker would hand back after the first round: that round's files plus the ones
    # its state names from earlier rounds (the baseline export, written once).
    round1 = Path(whole["_folder"]) / "checkpoint" / "1"
    state = json.loads((round1 / "state.json").read_text())
    assert state["step"] == 1
    assert all((round1 / name).is_file() for name in state["files"])
    resume = tmp_path / "resume"
    shutil.copytree(round1, resume)

    resumed = _engine(tmp_path, "resumed", digits_model, granularity, resume)
    assert resumed["resumed_from"] == {"stage": "finetuning", "step": 1}
    assert resumed["_checkpoints"] == [2, 3]
    assert resumed["schedule"]["rounds"] == whole["schedule"]["rounds"]
    assert resumed["accuracy"] == whole["accuracy"]
    assert resumed["sparsity"] == whole["sparsity"]
    assert resumed["baseline"]["size"] == whole["baseline"]["size"]
    # Same weights, so the same zeros: the masks of round 1 held through the resume.
    a = keras.saving.load_model(Path(whole["_folder"]) / "out" / "model.keras").get_weights()
    b = keras.saving.load_model(Path(resumed["_folder"]) / "out" / "model.keras").get_weights()
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
