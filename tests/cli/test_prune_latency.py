"""`shears prune --latency-ms --device`, run as a subprocess like a user runs it."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import keras

from contract.devices import get_profile
from pruning import export
from pruning.estimate import estimate

DEVICE = "cortex-a53-1200mhz"


def _shears(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "shears.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_prune_to_a_latency_budget(tmp_path: Path) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((128, 3)),
            keras.layers.Conv1D(8, 5, strides=2, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv1D(16, 5, strides=2, padding="same", activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling1D(),
            keras.layers.Dense(6, activation="softmax", name="classes"),
        ]
    )
    path = tmp_path / "har.keras"
    model.save(path)
    with contextlib.redirect_stdout(io.StringIO()):
        dense_ms = estimate(export.to_tflite(model), get_profile(DEVICE))["estimate_ms"]
    budget = round(0.6 * dense_ms, 4)
    out, report = tmp_path / "out.tflite", tmp_path / "report.json"
    args = ["prune", str(path), "--data", "builtin:har", "-o", str(out), "--report", str(report), "--epochs", "0"]
    done = _shears(*args, "--granularity", "channel", "--latency-ms", str(budget), "--device", DEVICE)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{DEVICE}: estimated" in done.stdout
    assert "met" in done.stdout
    found = json.loads(report.read_text())["latency_search"]
    assert found["met"] is True
    assert found["reached_estimate_ms"] <= budget
    assert estimate(out.read_bytes(), get_profile(DEVICE))["estimate_ms"] <= budget


def test_latency_budget_usage_errors(tmp_path: Path) -> None:
    # In this process (click's runner): the options are refused before any engine work, so a
    # subprocess per case only paid three TensorFlow imports.
    from click.testing import CliRunner

    from shears.cli import main

    path = tmp_path / "none.keras"
    path.write_bytes(b"not read: the options are refused first")
    common = ["prune", str(path), "--data", "builtin:har", "-o", str(tmp_path / "o.tflite"), "--latency-ms", "1"]
    runner = CliRunner()
    unstructured = runner.invoke(main, [*common, "--device", DEVICE])
    assert unstructured.exit_code == 2
    assert "do not make it faster" in unstructured.stderr
    unknown = runner.invoke(main, [*common, "--granularity", "channel", "--device", "toaster-9000"])
    assert unknown.exit_code == 2
    assert "known devices" in unknown.stderr
    alone = runner.invoke(main, [*common, "--granularity", "channel"])
    assert alone.exit_code == 2
    assert "go together" in alone.stderr
    # A batch of 0 was a ZeroDivisionError deep in the engine; now a usage error like the rest.
    empty = runner.invoke(main, ["prune", str(path), "--data", "builtin:har", "-o", "o.tflite", "--batch-size", "0"])
    assert empty.exit_code == 2
    assert "batch_size must be >= 1" in empty.stderr
