"""What recovers accuracy per epoch after a channel cut (issue 13, item 3), on the TUNING models.

    .venv/bin/python bench/recovery.py                 # prints the table, writes docs/benchmarks.md's section

The models of bench/engine.py (which the engine was tuned on; bench/heldout.py holds the held-out
ones), channel 50%, 3 epochs, three recipes side by side, same seeds:
- `constant`: Adam 3e-3, constant, labels only (bench/engine.py's setting before pruning/recipe.py);
- `rewound`: the model's own compiled optimizer and rate, warm-up + cosine (pruning/recipe.py), labels only;
- `rewound+kd`: the same, with the dense model as teacher (pruning/recipe.py's default).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import markdown, write_section  # noqa: E402
from bench.engine_harness import _digits16_cnn, _ic_resnet8, _kws_dscnn  # noqa: E402
from pruning.run import run  # noqa: E402
from pruning.spec import PruneSpec  # noqa: E402

SECTION = "## Recovery recipes on the tuning models (issue 13)"
MODELS = {"digits16_cnn": _digits16_cnn, "ic_resnet8": _ic_resnet8, "kws_dscnn": _kws_dscnn}
RECIPES: dict[str, dict[str, Any]] = {
    "constant": {"learning_rate": 3e-3, "distill": False},
    "rewound": {"distill": False},
    "rewound+kd": {},
}


def main() -> int:
    rows = []
    for name, build in MODELS.items():
        model, data, _ = build()
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "dense.keras"
            model.save(path)
            cells: list[Any] = [name]
            for recipe, settings in RECIPES.items():
                spec = PruneSpec(granularity="channel", sparsity=0.5, epochs=3, seed=0, **settings)
                accuracy = run(path, data, spec, Path(tmp) / recipe).report["accuracy"]
                drop = 100 * (accuracy["before"] - accuracy["after"])
                cells.append(f"{drop:+.1f}")
                print(name, recipe, f"{drop:+.2f} points", flush=True)
            rows.append(cells)
    text = "\n".join(
        [
            SECTION,
            "",
            "Command: `.venv/bin/python bench/recovery.py`. Accuracy drop in points (validation split) after a",
            "50% channel cut and 3 epochs; lower is better. These are the tuning models: a training score.",
            "",
            markdown(["model", *RECIPES], rows),
            "",
        ]
    )
    write_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
