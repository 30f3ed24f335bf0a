"""Which share of each keras.applications family's MACs channel pruning can reach (issue 13).

    .venv/bin/python bench/app_families.py            # prints the table and writes docs/benchmarks.md's section

Each backbone (include_top=False, weights=None) is nested in a Sequential with GlobalAveragePooling2D +
Dense(10), as transfer learning does, then flattened (pruning.nesting) and analysed (pruning.graph).
A layer's MACs count as reachable when its input or output channels belong to a prunable group; each
frozen group's reason is listed. Then every prunable group is cut to half and the model rebuilt and
run, which shows the surgery holds on the family. No timing: the machine's load does not matter.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import markdown, write_section  # noqa: E402
from pruning.counting import layer_macs, total_macs  # noqa: E402
from pruning.graph import analyse  # noqa: E402
from pruning.nesting import flatten  # noqa: E402
from pruning.surgery import remove_channels  # noqa: E402

SECTION = "## keras.applications families under channel pruning (issue 13)"
A = keras.applications
FAMILIES = {
    "MobileNet": lambda: A.MobileNet(include_top=False, weights=None, input_shape=(96, 96, 3), alpha=0.25),
    "MobileNetV2": lambda: A.MobileNetV2(include_top=False, weights=None, input_shape=(96, 96, 3), alpha=0.35),
    "MobileNetV3Small": lambda: A.MobileNetV3Small(include_top=False, weights=None, input_shape=(96, 96, 3)),
    "MobileNetV3Large": lambda: A.MobileNetV3Large(include_top=False, weights=None, input_shape=(96, 96, 3)),
    "EfficientNetB0": lambda: A.EfficientNetB0(include_top=False, weights=None, input_shape=(96, 96, 3)),
    "EfficientNetV2B0": lambda: A.EfficientNetV2B0(include_top=False, weights=None, input_shape=(96, 96, 3)),
    "ResNet50": lambda: A.ResNet50(include_top=False, weights=None, input_shape=(64, 64, 3)),
    "ResNet50V2": lambda: A.ResNet50V2(include_top=False, weights=None, input_shape=(64, 64, 3)),
    "DenseNet121": lambda: A.DenseNet121(include_top=False, weights=None, input_shape=(64, 64, 3)),
    "NASNetMobile": lambda: A.NASNetMobile(include_top=False, weights=None, input_shape=(96, 96, 3)),
    "ConvNeXtTiny": lambda: A.ConvNeXtTiny(include_top=False, weights=None, input_shape=(64, 64, 3)),
}


def survey(name: str) -> list[object]:
    backbone = FAMILIES[name]()
    model = keras.Sequential(
        [keras.Input(backbone.input_shape[1:]), backbone, keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    )
    flat, _ = flatten(model)
    graph = analyse(flat)
    prunable = {g.id for g in graph.prunable()}
    total = reachable = 0
    for node in graph.nodes:
        macs = layer_macs(node.layer)
        total += macs
        chans = [graph.chan(t) for t in [*node.inputs, *node.outputs]]
        if any(c and any(g in prunable for g, _ in c) for c in chans):
            reachable += macs
    reasons: dict[str, int] = {}
    for gid, group in graph.groups.items():
        if graph.find(gid) == gid and group.frozen:
            words = group.frozen.split(" ")
            # "Add add_3 joins ..." -> "Add joins ...": one line per kind of reason
            reason = " ".join(words[:1] + words[2:]) if len(words) > 2 and words[1][-1:].isdigit() else group.frozen
            reasons[reason] = reasons.get(reason, 0) + 1
    halved = remove_channels(graph, {g.id: set(range(0, g.size, 2)) for g in graph.prunable()})
    halved.predict(np.zeros((1, *backbone.input_shape[1:]), np.float32), verbose=0)
    frozen = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return [name, f"{total / 1e6:.1f}", f"{reachable / total:.1%}", len(prunable), frozen,
            f"{total_macs(halved) / total:.2f}"]  # fmt: skip


def main() -> int:
    rows = []
    for name in sys.argv[1:] or FAMILIES:
        started = time.perf_counter()
        rows.append(survey(name))
        print(*rows[-1], f"{time.perf_counter() - started:.1f}s", sep=" | ", flush=True)
    header = ["family", "MMACs", "MACs in prunable groups", "prunable groups", "frozen groups (reason)",
              "MACs after a 50% cut / dense"]  # fmt: skip
    text = "\n".join(
        [
            SECTION,
            "",
            "Command: `.venv/bin/python bench/app_families.py`. Backbones nested in a Sequential (GAP + Dense(10)),",
            "flattened and analysed; 'feeds model output' is the classifier, which is never cut. RegNetX002 is",
            "not in Keras 3.15's keras.applications.",
            "",
            markdown(header, rows),
            "",
        ]
    )
    if not sys.argv[1:]:
        write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
