"""Why the held-out conv1d_gru's 50% channel cut is only ~1.2x faster (issue 13): where its time goes.

    .venv/bin/python bench/gru_profile.py              # exported with the converter's WHILE loop
    .venv/bin/python bench/gru_profile.py --unrolled   # exported as the engine does (steps unrolled)

A diagnosis, not a tuning run: the model is bench/heldout.py's `conv1d_gru` architecture (untrained:
latency does not depend on the weights' values), cut by the engine's ChannelPruner at 50% (the groups it
finds, the widths it leaves), exported float like the engine's rows. Printed:
- every channel group the pruner sees (is the GRU's group pruned?) and the widths before -> after;
- the ops of the main graph and of the GRU's WHILE body, with the loop's trip count;
- LiteRT (1 thread, XNNPACK) time of the whole model and of its two parts, each exported alone: the
  convolutions (input -> second Conv1D) and the recurrent part (GRU + Dense on the second Conv1D's
  output), dense and cut, plus the same parts with one unit/channel left (the floor no cut goes below),
  interleaved, median of 5 rounds of 200 runs each.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.engine_latency import interleaved_latency  # noqa: E402
from bench.heldout import conv1d_gru  # noqa: E402
from pruning import export  # noqa: E402
from pruning.estimate.graph import _schema, parse  # noqa: E402
from pruning.strategies import ChannelPruner  # noqa: E402

L = keras.layers


def _widths(model: keras.Model) -> dict[str, int]:
    return {
        layer.name: int(getattr(layer, "filters", None) or getattr(layer, "units", 0))
        for layer in model.layers
        if hasattr(layer, "filters") or hasattr(layer, "units")
    }


def _subgraph_ops(tflite: bytes) -> list[Counter[str]]:
    """Builtin op names per subgraph (0: main; a WHILE's body and condition follow)."""
    schema = _schema()
    model = schema.Model.GetRootAsModel(tflite, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
    out = []
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        codes = [model.OperatorCodes(sub.Operators(i).OpcodeIndex()) for i in range(sub.OperatorsLength())]
        out.append(Counter(names.get(max(c.BuiltinCode(), c.DeprecatedBuiltinCode()), "?") for c in codes))
    return out


def _parts(model: keras.Model) -> tuple[keras.Model, keras.Model]:
    """(the convolutions alone, the recurrent part alone) as two models with the same weights."""
    conv = keras.Model(model.inputs, model.layers[1].output)
    tail_in = keras.Input(model.layers[1].output.shape[1:])
    tail = keras.Model(tail_in, model.layers[3](model.layers[2](tail_in)))
    return conv, tail


def main() -> int:
    keras.utils.set_random_seed(0)
    dense, data, _ = conv1d_gru()
    pruner = ChannelPruner(dense, data, "sparse_categorical_crossentropy", "magnitude")
    print(json.dumps(pruner.notes["groups"]))
    cut = pruner.prune(dense, 0.5)
    floor = pruner.prune(dense, 1.0)
    print("widths dense", _widths(dense), "cut", _widths(cut), "floor", _widths(floor))
    unroll = "--unrolled" in sys.argv  # the engine's own export since 2026-12-07 (steps unrolled); else the loop

    def exported(m: keras.Model) -> bytes:
        return export.to_tflite(m) if unroll else export._convert(m, "none", None)

    files = {name: exported(m) for name, m in (("dense", dense), ("cut", cut), ("floor", floor))}
    for name, tflite in files.items():
        graph = parse(tflite)
        subs = _subgraph_ops(tflite)
        loops = [(lp.trips, lp.body_ops) for lp in graph.loops]
        print(f"{name}: main graph {dict(subs[0])}; subgraphs {[dict(s) for s in subs[1:]]}")
        print(f"  loops (trips, body ops) {loops}; ops with the loop inlined {len(graph.ops)}")
    whole = interleaved_latency(files["dense"], files["cut"], files["floor"])
    print("whole model", json.dumps({k: round(v, 4) for k, v in whole.items()}))
    parts = {name: _parts(m) for name, m in (("dense", dense), ("cut", cut), ("floor", floor))}
    for i, part in enumerate(("convolutions", "GRU + Dense")):
        timing = interleaved_latency(*[exported(parts[name][i]) for name in ("dense", "cut", "floor")])
        print(part, json.dumps({k: round(v, 4) for k, v in timing.items()}))
    x = np.zeros((1, *dense.input_shape[1:]), np.float32)
    assert export.predict(files["cut"], x).shape == (1, 6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
