"""The report: every figure for the pruned model and the dense baseline exported the same way."""

import json
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from contract.report import Report
from pruning import export
from pruning.counting import LayerCount


def write_report(report: dict[str, Any], path: Path) -> None:
    """Writes `report.json` once it validates against the contract's `Report` (a mismatch is an engine bug)."""
    text = json.dumps(report, indent=2)
    Report.model_validate_json(text)
    path.write_text(text)


def resources() -> dict[str, int]:
    """What the engine process used: its peak resident memory (bytes). The sandbox's limit is on address
    space (SHEARS_ENGINE_MEMORY_BYTES, RLIMIT_AS), which TensorFlow's reservations keep far above this."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"peak_rss_bytes": int(peak if sys.platform == "darwin" else peak * 1024)}


def sizes(keras_path: Path, tflite: bytes) -> dict[str, int]:
    return {
        "keras_bytes": keras_path.stat().st_size,
        "tflite_bytes": len(tflite),
        "tflite_gzip_bytes": export.gzip_bytes(tflite),
    }


def agreement(a: NDArray[Any], b: NDArray[Any], task: str) -> float:
    """Share of samples where the `.tflite` and Keras models agree (same class, or within 1e-3)."""
    if task == "classification":
        return float(np.mean(a.argmax(-1) == b.argmax(-1)))
    return float(np.mean(np.all(np.abs(a - b) <= 1e-3 * np.maximum(1.0, np.abs(b)), axis=-1)))


def sparsity_block(
    before: dict[str, LayerCount],
    after: list[LayerCount],
    masks: dict[str, NDArray[Any]],
    target: float | None,
    reached: float,
) -> dict[str, Any]:
    """Sparsity over prunable kernels (masked weights), or over channels for channel removal."""
    kernels_total = sum(m.size for m in masks.values())
    kernels_zero = sum(int(m.size - np.count_nonzero(m)) for m in masks.values())
    channels_before = sum(c.channels or 0 for c in before.values())
    channels_after = sum(c.channels or 0 for c in after)
    return {
        "target": target,
        "reached": round(reached, 6),
        "overall": kernels_zero / kernels_total
        if kernels_total
        else 1 - sum(c.params for c in after) / sum(c.params for c in before.values()),
        "channels": {"before": channels_before, "after": channels_after},
        "per_layer": [
            {
                "layer": c.layer,
                "kind": c.kind,
                "params": c.params,
                "nonzero": c.nonzero,
                "channels_before": before[c.layer].channels if c.layer in before else None,
                "channels_after": c.channels,
                "macs_before": before[c.layer].macs if c.layer in before else None,
                "macs_after": c.macs,
            }
            for c in after
        ],
    }
