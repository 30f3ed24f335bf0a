"""Pictures of a job as PNG files: per-layer pruning, fine-tuning curves, and sweep trade-offs.

Drawn with matplotlib's Agg canvas (no display, no pyplot state) from the report dict alone, so
any process can draw them: this module imports neither Keras nor TensorFlow. Figures have a fixed
size and resolution and no timestamp, so the same report gives the same bytes. A report with a
missing or broken part gives a figure that says so instead of an exception.
"""

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 110
WIDTH_IN = 8.0
# Hand-picked so that before/after, pruned/dense and front/rest read apart in grey print too.
BEFORE, AFTER, ACCENT, MUTED = "#c9d3df", "#1f5f99", "#d9822b", "#7a7a7a"
JOB_PLOTS = ("layers.png", "training.png")
_MAX_LABEL = 28


def pareto_front(points: Sequence[Mapping[str, Any]], keys: Mapping[str, str]) -> list[Mapping[str, Any]]:
    """The points no other point beats: at least as good on every key and better on one.

    `keys` maps a field of the points to `"max"` or `"min"` (e.g. `{"accuracy": "max",
    "latency_ms": "min"}`); per-device figures are flattened into plain fields first. Points with a
    missing or non-finite value on a key take no part. Order is kept; equal points are all kept.
    """
    for key, way in keys.items():
        if way not in ("max", "min"):
            raise ValueError(f"direction of {key!r} must be 'max' or 'min', got {way!r}")
    signs = {key: (1.0 if way == "max" else -1.0) for key, way in keys.items()}
    scored = []
    for point in points:
        values = [_number(point.get(key)) for key in keys]
        if all(v is not None for v in values):
            scored.append((point, [signs[key] * v for key, v in zip(keys, values, strict=True) if v is not None]))

    def beaten(mine: list[float]) -> bool:
        return any(
            all(o >= m for o, m in zip(other, mine, strict=True))
            and any(o > m for o, m in zip(other, mine, strict=True))
            for _, other in scored
        )

    return [point for point, mine in scored if not beaten(mine)]


def write_job_plots(report: Mapping[str, Any], folder: Path) -> list[str]:
    """Write every plot of a prune job into `folder`; returns the file names."""
    folder.mkdir(parents=True, exist_ok=True)
    layers(report, folder / "layers.png")
    training(report, folder / "training.png")
    return list(JOB_PLOTS)


def layers(report: Mapping[str, Any], out_path: Path) -> None:
    """Per layer: output channels before and after (channel pruning), else the sparsity reached."""
    rows = [r for r in _get(report, "sparsity", "per_layer") or [] if isinstance(r, Mapping)]
    # Layers with a kernel have an output-channel count (counting.output_channels); BatchNorm has none.
    kernels = [r for r in rows if r.get("channels_before") is not None or r.get("channels_after") is not None]
    rows = kernels or rows
    granularity = _get(report, "pruning", "granularity") or _get(report, "spec", "granularity") or "unstructured"
    fig = _figure(max(2.6, 1.2 + 0.32 * len(rows)))
    ax = fig.add_subplot()
    if not rows:
        _no_data(ax, "no per-layer figures in this report")
    elif granularity == "channel":
        _draw_channels(ax, rows)
    else:
        _draw_sparsity(ax, rows, _number(_get(report, "sparsity", "target")), str(granularity))
    _save(fig, out_path)


def _draw_channels(ax: Axes, rows: list[Mapping[str, Any]]) -> None:
    names = [_short(str(r.get("layer", "?"))) for r in rows]
    before = [_number(r.get("channels_before")) or 0.0 for r in rows]
    after = [_number(r.get("channels_after")) or 0.0 for r in rows]
    y = list(range(len(rows)))
    ax.barh(y, before, color=BEFORE, label="before", height=0.7)
    ax.barh(y, after, color=AFTER, label="after", height=0.45)
    for i, (b, a) in enumerate(zip(before, after, strict=True)):
        ax.text(max(a, b), i, f" {a:.0f}/{b:.0f}", va="center", fontsize=8, color=MUTED)
    ax.set_xlim(0, max([*before, *after, 1.0]) * 1.18)
    _layer_axis(ax, names)
    ax.set_xlabel("output channels")
    ax.set_title("Channels per layer, before and after pruning")
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _draw_sparsity(ax: Axes, rows: list[Mapping[str, Any]], target: float | None, granularity: str) -> None:
    names = [_short(str(r.get("layer", "?"))) for r in rows]
    reached = []
    for r in rows:
        params, nonzero = _number(r.get("params")), _number(r.get("nonzero"))
        reached.append(100.0 * (1 - nonzero / params) if params and nonzero is not None else 0.0)
    y = list(range(len(rows)))
    ax.barh(y, [100.0] * len(rows), color=BEFORE, height=0.7)
    ax.barh(y, reached, color=AFTER, height=0.45, label="zero weights")
    for i, value in enumerate(reached):
        ax.text(value, i, f" {value:.1f}%", va="center", fontsize=8, color="black" if value < 85 else "white")
    if target is not None:
        ax.axvline(100.0 * target, color=ACCENT, linestyle="--", linewidth=1.2, label=f"target {100 * target:.0f}%")
    ax.set_xlim(0, 100)
    _layer_axis(ax, names)
    ax.set_xlabel("weights that are zero (%, bias included)")
    ax.set_title(f"Sparsity per layer ({granularity.replace('_', ':')})")
    _legend(ax, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)


def _layer_axis(ax: Axes, names: list[str]) -> None:
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=8 if len(names) < 30 else 6)
    ax.invert_yaxis()  # first layer on top, as in model.summary()
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)


def training(report: Mapping[str, Any], out_path: Path) -> None:
    """Fine-tuning: train loss per epoch over all rounds, then the val metric per round.

    Dotted lines end each round; the top of the figure gives each round's target sparsity.
    """
    rounds = [r for r in _get(report, "schedule", "rounds") or [] if isinstance(r, Mapping)]
    metric = str(_get(report, "accuracy", "metric") or "accuracy")
    fig = _figure(5.6)
    loss_ax, val_ax = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    if not rounds:
        _no_data(loss_ax, "no fine-tuning rounds in this report")
        _no_data(val_ax, "")
        _save(fig, out_path)
        return
    # x is the epoch count so far; with no epochs at all, one unit per round.
    # x counts epochs; with no epochs at all, one unit per round. Round i prunes at starts[i] + 0.5.
    segments: list[tuple[list[int], list[float]]] = []
    ends, epoch = [], 0
    for r in rounds:
        xs, ys = [], []
        for value in map(_number, r.get("train_loss") or []):
            epoch += 1
            if value is not None:
                xs.append(epoch)
                ys.append(value)
        segments.append((xs, ys))
        ends.append(epoch)
    by_epoch = epoch > 0
    if not by_epoch:
        ends = list(range(1, len(rounds) + 1))
    drawn = [(xs, ys) for xs, ys in segments if xs]
    for i, (xs, ys) in enumerate(drawn):  # one line per round: pruning breaks the curve
        loss_ax.plot(xs, ys, color=AFTER, marker="o", markersize=3, linewidth=1.4, label=None if i else "train loss")
    if not drawn:
        _no_data(loss_ax, "no train loss per epoch (no fine-tuning epochs)")
    loss_ax.set_ylabel("train loss")
    starts = [0, *ends[:-1]]
    for i, (r, start, end) in enumerate(zip(rounds, starts, ends, strict=True)):
        if i:
            for ax in (loss_ax, val_ax):
                ax.axvline(start + 0.5, color=MUTED, linestyle=":", linewidth=0.8)
        sparsity = _number(r.get("sparsity"))
        label = f"round {r.get('step', i + 1)}" + (f": {100 * sparsity:.1f}%" if sparsity is not None else "")
        loss_ax.text(
            (start + end) / 2 + 0.5 if by_epoch else end,
            1.01,
            label,
            transform=loss_ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=7,
            color=MUTED,
        )
    loss_ax.set_xlim(0.5, ends[-1] + 0.5)
    loss_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    loss_ax.set_title("Fine-tuning (rounds with their target sparsity)", pad=16)

    vals = [(_number((r.get("val") or {}).get(metric)) if isinstance(r.get("val"), Mapping) else None) for r in rounds]
    shown = [(x, v) for x, v in zip(ends, vals, strict=True) if v is not None]
    if shown:
        val_ax.plot(
            *zip(*shown, strict=True),
            color=ACCENT,
            marker="s",
            markersize=5,
            linewidth=1.4,
            label=f"val {metric} after the round",
        )
    before = _number(_get(report, "accuracy", "before"))
    if before is not None:
        val_ax.axhline(before, color=MUTED, linestyle="--", linewidth=1, label=f"dense {before:.4g}")
    guard = _number(_get(report, "guard", "max_drop"))
    if before is not None and guard is not None:
        limit = before - guard if metric == "accuracy" or _get(report, "task") == "classification" else before + guard
        val_ax.axhline(limit, color="#b03a2e", linestyle=":", linewidth=1, label="guard")
    if not shown:
        _no_data(val_ax, f"no val {metric} per round")
    val_ax.set_ylabel(f"val {metric}")
    val_ax.set_xlabel("epoch" if by_epoch else "round")
    _legend(val_ax, loc="best", fontsize=8, frameon=False)
    _legend(loss_ax, loc="upper right", fontsize=8, frameon=False)
    for ax in (loss_ax, val_ax):
        ax.grid(color="#e6e6e6", linewidth=0.6)
    _save(fig, out_path)


def tradeoff(
    points: Sequence[Mapping[str, Any]],
    out_path: Path,
    *,
    device: str,
    budget_ms: float | None = None,
    x: str = "latency_ms",
) -> None:
    """Accuracy against latency on `device` (left) and against gzipped size (right), for a sweep.

    A point is `{"label": str, "accuracy": float, "latency_ms": {device: ms} | ms,
    "size_bytes": gzipped .tflite bytes, "is_baseline": bool}`; `x` names the latency field. Each
    panel marks its Pareto front (higher accuracy, lower cost), the dense baseline with a star, and
    the left one the latency budget when given.
    """
    fig = _figure(4.2, width=WIDTH_IN * 1.4)
    lat_ax, size_ax = fig.subplots(1, 2, sharey=True)
    rows = []
    for p in points:
        if not isinstance(p, Mapping):
            continue
        latency = p.get(x)
        rows.append(
            {
                "label": str(p.get("label", "")),
                "accuracy": _number(p.get("accuracy")),
                "latency": _number(latency.get(device) if isinstance(latency, Mapping) else latency),
                "size_kib": (s / 1024 if (s := _number(p.get("size_bytes"))) is not None else None),
                "is_baseline": bool(p.get("is_baseline")),
            }
        )
    _draw_tradeoff(lat_ax, rows, "latency", f"{x.replace('_ms', '')} on {device} (ms)")
    _draw_tradeoff(size_ax, rows, "size_kib", "gzipped .tflite (KiB)")
    if budget_ms is not None:
        lat_ax.axvline(budget_ms, color="#b03a2e", linestyle="--", linewidth=1.2, label=f"budget {budget_ms:g} ms")
    lat_ax.set_ylabel("accuracy")
    _legend(lat_ax, loc="lower right", fontsize=8, frameon=True, framealpha=0.9)
    fig.suptitle(f"Accuracy against cost ({len(rows)} model{'' if len(rows) == 1 else 's'})", fontsize=11)
    _save(fig, out_path)


def _draw_tradeoff(ax: Axes, rows: list[dict[str, Any]], cost: str, xlabel: str) -> None:
    usable = [r for r in rows if r["accuracy"] is not None and r[cost] is not None]
    ax.set_xlabel(xlabel)
    ax.grid(color="#e6e6e6", linewidth=0.6)
    ax.margins(x=0.12, y=0.08)
    if not usable:
        _no_data(ax, "no points with both figures")
        return
    front = pareto_front(usable, {"accuracy": "max", cost: "min"})
    rest = [r for r in usable if not any(r is f for f in front) and not r["is_baseline"]]
    if rest:
        ax.scatter(
            [r[cost] for r in rest],
            [r["accuracy"] for r in rest],
            color=BEFORE,
            edgecolor=MUTED,
            s=28,
            label="pruned",
            zorder=2,
        )
    line = sorted(front, key=lambda r: (r[cost], -r["accuracy"]))
    ax.plot(
        [r[cost] for r in line],
        [r["accuracy"] for r in line],
        color=AFTER,
        marker="o",
        markersize=5,
        drawstyle="steps-post",
        linewidth=1.2,
        label="Pareto front",
        zorder=3,
    )
    for r in usable:
        if r["is_baseline"]:
            ax.scatter(
                [r[cost]],
                [r["accuracy"]],
                marker="*",
                s=160,
                color=ACCENT,
                edgecolor="black",
                linewidth=0.5,
                label="dense baseline",
                zorder=4,
            )
    if len(usable) <= 16:
        for r in usable:
            ax.annotate(
                r["label"][:20],
                (r[cost], r["accuracy"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=MUTED,
            )


def _figure(height_in: float, width: float = WIDTH_IN) -> Figure:
    fig = Figure(figsize=(width, min(height_in, 16.0)), dpi=DPI, layout="constrained")
    return fig


def _save(fig: Figure, out_path: Path) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software" or date chunk: the same report gives the same bytes.
    fig.savefig(out_path, format="png", dpi=DPI, metadata={"Software": None})


def _legend(ax: Axes, **options: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty legend box says nothing (and warns)
        ax.legend(**options)


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=9, color=MUTED)
    # tick_params, not set_ticks: a panel sharing its axis keeps the other panel's ticks.
    ax.tick_params(left=False, bottom=False, labelleft=False, labelbottom=False)
    ax.grid(False)


def _get(report: Mapping[str, Any], *path: str) -> Any:
    node: Any = report
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _short(name: str) -> str:
    return name if len(name) <= _MAX_LABEL else name[: _MAX_LABEL - 1] + "…"
