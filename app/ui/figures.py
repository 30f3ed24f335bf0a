"""How the dashboard writes the report's numbers: one function per kind of figure."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

MISSING = "—"


def _number(value: Any) -> bool:
    """A figure to show; anything else (None, a key the report lacks) shows as MISSING."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def percent(value: Any) -> str:
    """A fraction as a percentage with 2 decimals: 0.98765 -> `98.77 %`."""
    return f"{value * 100:.2f} %" if _number(value) else MISSING


def decimal(value: Any) -> str:
    """A figure without a unit of its own (an error, a loss), to 4 decimals."""
    return f"{value:.4f}" if _number(value) else MISSING


def ms(value: Any) -> str:
    """Milliseconds with 3 decimals, or 3 significant digits below 1 ms (a host's 0.0093 ms stays visible)."""
    if not _number(value):
        return MISSING
    return f"{value:.3f}" if abs(value) >= 1 else f"{value:.3g}"


def count(value: Any) -> str:
    """Bytes, parameters, MACs: whole numbers with thousands separators."""
    return f"{value:,}" if _number(value) else MISSING


def yes_no(value: Any) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else MISSING


def text(value: Any) -> str:
    return str(value) if isinstance(value, str | int | float) else MISSING


def moment(value: datetime | None) -> str:
    return MISSING if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def metric_format(report: dict[str, Any]) -> Callable[[Any], str]:
    """Accuracy is a percentage; a regression job's error (mae) is a plain figure."""
    return percent if report.get("accuracy", {}).get("metric", "accuracy") == "accuracy" else decimal


def layer_sparsity(layer: dict[str, Any]) -> float | None:
    """Share of the layer's weights that are zero (or removed), from its counts in the report."""
    params, nonzero = layer.get("params"), layer.get("nonzero")
    return None if not params or nonzero is None else 1 - nonzero / params


FORMATS: dict[str, Callable[..., Any]] = {
    "percent": percent,
    "decimal": decimal,
    "ms": ms,
    "count": count,
    "yes_no": yes_no,
    "text": text,
    "moment": moment,
    "metric_format": metric_format,
    "layer_sparsity": layer_sparsity,
}
