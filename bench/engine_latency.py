"""Latency measurements of the engine benchmark: interleaved LiteRT timings, the one-channel floor,
TFLite Micro in a child process (`python bench/engine_latency.py DENSE PRUNED`), and `--latency-only`."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # before Keras loads; see bench/engine_harness.py
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.engine_harness import LATENCY_ROUNDS, LATENCY_RUNS, MODELS  # noqa: E402
from pruning import export  # noqa: E402
from pruning.datasets import Data  # noqa: E402
from pruning.host import measure_latency  # noqa: E402
from pruning.loading import load_model  # noqa: E402


def interleaved_latency(dense: bytes, pruned: bytes, floor: bytes | None = None) -> dict[str, float]:
    """Median of the per-round medians, dense and pruned (and `floor`) alternating (1 thread,
    LiteRT/XNNPACK)."""
    d, p, f = [], [], []
    for _ in range(LATENCY_ROUNDS):
        d.append(measure_latency(dense, runs=LATENCY_RUNS)["measured_ms"])
        p.append(measure_latency(pruned, runs=LATENCY_RUNS)["measured_ms"])
        if floor is not None:
            f.append(measure_latency(floor, runs=LATENCY_RUNS)["measured_ms"])
    dense_ms, pruned_ms = float(np.median(d)), float(np.median(p))
    out = {"dense_ms": dense_ms, "pruned_ms": pruned_ms, "speedup": dense_ms / pruned_ms}
    if f:
        out["floor_ms"] = float(np.median(f))
        out["max_speedup"] = dense_ms / out["floor_ms"]
    return out


def floor_model(path: Path, data: Data) -> bytes:
    """The dense architecture with one channel left in every prunable group, exported: what no channel
    cut can go below on this runtime (the fixed cost of the graph's ops and of an invoke)."""
    from pruning.loading import resolve_loss
    from pruning.strategies import ChannelPruner

    model = load_model(path)
    loss = resolve_loss(model, data.y_train, data.task, model.predict(data.x_train[:32], verbose=0))[0]
    return export.to_tflite(ChannelPruner(model, data, loss, "magnitude").prune(model, 1.0))


MICRO_ROUNDS, MICRO_RUNS = 5, 30


def micro_timing(dense_path: Path, pruned_path: Path) -> dict[str, float]:
    """The child side of `micro_latency` (runs in its own process: TFLite Micro aborts the process on
    some models). Median of the per-round medians, dense and pruned alternating."""
    from tflite_micro.python.tflite_micro import runtime

    def median_ms(path: Path) -> float:
        interp = runtime.Interpreter.from_bytes(path.read_bytes())
        details = interp.get_input_details(0)
        interp.set_input(np.zeros(details["shape"], dtype=details["dtype"]), 0)
        interp.invoke()  # warm-up
        times = []
        for _ in range(MICRO_RUNS):
            start = time.perf_counter()
            interp.invoke()
            times.append((time.perf_counter() - start) * 1000)
        return float(np.median(times))

    d, p = [], []
    for _ in range(MICRO_ROUNDS):
        d.append(median_ms(dense_path))
        p.append(median_ms(pruned_path))
    dense_ms, pruned_ms = float(np.median(d)), float(np.median(p))
    return {"dense_ms": dense_ms, "pruned_ms": pruned_ms, "speedup": dense_ms / pruned_ms}


def micro_latency(dense: bytes, pruned: bytes) -> dict[str, float] | None:
    """Host latency with TFLite Micro's interpreter (LiteRT for Microcontrollers: the reference kernels
    that watch- and band-class MCUs run, without XNNPACK's fixed cost per invoke), in a child process;
    None if it cannot run the model."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="shears-bench-micro-") as tmp:
        paths = [Path(tmp) / "dense.tflite", Path(tmp) / "pruned.tflite"]
        paths[0].write_bytes(dense)
        paths[1].write_bytes(pruned)
        cmd = [sys.executable, str(Path(__file__).resolve()), *map(str, paths)]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return None
        if out.returncode != 0:
            print(f"  (TFLite Micro could not time this model: exit {out.returncode})", flush=True)
            return None
        return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def latency_only(names: list[str], rounds: int = 9) -> None:
    """Only the channel rows' speedup: each dense model against its 50% channel cut (no fine-tuning,
    which does not change the architecture), interleaved, `rounds` rounds; prints one line each."""
    from pruning.loading import resolve_loss
    from pruning.strategies import ChannelPruner

    for name in names:
        keras.backend.clear_session()
        model, data, _ = MODELS[name][0]()
        loss = resolve_loss(model, data.y_train, data.task, model.predict(data.x_train[:32], verbose=0))[0]
        pruned = ChannelPruner(model, data, loss, "magnitude").prune(model, 0.5)
        d, p = [], []
        dense_tflite, pruned_tflite = export.to_tflite(model), export.to_tflite(pruned)
        for _ in range(rounds):
            d.append(measure_latency(dense_tflite, runs=LATENCY_RUNS)["measured_ms"])
            p.append(measure_latency(pruned_tflite, runs=LATENCY_RUNS)["measured_ms"])
        dense_ms, pruned_ms = float(np.median(d)), float(np.median(p))
        print(
            f"{name}: {dense_ms:.4f} -> {pruned_ms:.4f} ms, {dense_ms / pruned_ms:.2f}x "
            f"(load {os.getloadavg()[0]:.1f})",
            flush=True,
        )


if __name__ == "__main__":  # the child side of micro_latency
    print(json.dumps(micro_timing(Path(sys.argv[1]), Path(sys.argv[2]))))
