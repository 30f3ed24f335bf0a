"""Plots and TensorBoard logs of a job: drawn from a real run's report, readable, small, stable."""

import json
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from pruning import plots
from pruning.datasets import Data, digits
from pruning.run import run
from pruning.spec import PruneSpec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert len(data) < 200_000, (path, len(data))
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


@pytest.fixture(scope="module")
def channel_run(digits_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One tiny real run: channel pruning in two rounds of two epochs."""
    d = digits()
    data = Data(d.x_train[:300], d.y_train[:300], d.x_val, d.y_val, name="digits-small")
    spec = PruneSpec(granularity="channel", sparsity=0.5, epochs=4, schedule="polynomial", steps=2, learning_rate=1e-3)
    workdir = tmp_path_factory.mktemp("plots-run")
    return workdir, run(digits_model, data, spec, workdir).report


def test_pareto_front_keeps_exactly_the_unbeaten_points() -> None:
    points = [
        {"label": "dense", "accuracy": 0.97, "latency_ms": 1.0},
        {"label": "a", "accuracy": 0.96, "latency_ms": 0.6},
        {"label": "beaten by a", "accuracy": 0.95, "latency_ms": 0.7},
        {"label": "tie with a", "accuracy": 0.96, "latency_ms": 0.6},
        {"label": "same speed, worse", "accuracy": 0.90, "latency_ms": 0.6},
        {"label": "fastest", "accuracy": 0.70, "latency_ms": 0.3},
        {"label": "no latency", "accuracy": 0.99},
        {"label": "nan", "accuracy": float("nan"), "latency_ms": 0.1},
    ]
    front = plots.pareto_front(points, {"accuracy": "max", "latency_ms": "min"})
    assert [p["label"] for p in front] == ["dense", "a", "tie with a", "fastest"]
    # Flip the directions and the front flips with it: "a" now loses to the slower, worse point.
    worst = plots.pareto_front(points, {"accuracy": "min", "latency_ms": "max"})
    assert [p["label"] for p in worst] == ["dense", "beaten by a", "same speed, worse", "fastest"]
    assert plots.pareto_front([], {"accuracy": "max"}) == []
    with pytest.raises(ValueError, match="'max' or 'min'"):
        plots.pareto_front(points, {"accuracy": "up"})


def test_a_run_writes_its_plots_and_lists_them(channel_run: tuple[Path, dict[str, Any]]) -> None:
    workdir, report = channel_run
    assert report["artifacts"] == ["layers.png", "training.png", "tensorboard.tar.gz"]
    assert json.loads((workdir / "report.json").read_text())["artifacts"] == report["artifacts"]
    assert _png_size(workdir / "plots" / "layers.png")[0] == 8 * plots.DPI
    assert _png_size(workdir / "plots" / "training.png") == (8 * plots.DPI, int(5.6 * plots.DPI))


def test_same_report_same_bytes_and_every_layer_kind(channel_run: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    _, report = channel_run
    plots.layers(report, tmp_path / "a.png")
    plots.layers(report, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    # The same layers as an unstructured job: sparsity bars instead of channel bars.
    unstructured = {**report, "pruning": {"granularity": "unstructured"}}
    plots.layers(unstructured, tmp_path / "c.png")
    _png_size(tmp_path / "c.png")
    assert (tmp_path / "c.png").read_bytes() != (tmp_path / "a.png").read_bytes()
    # One bar per layer with a kernel (BatchNorm has none): the figure grows with the layer count.
    kernels = [r for r in report["sparsity"]["per_layer"] if r["channels_before"] is not None]
    deep = {**report, "sparsity": {"per_layer": kernels * 10}}
    plots.layers(deep, tmp_path / "deep.png")
    assert _png_size(tmp_path / "deep.png")[1] > 2 * _png_size(tmp_path / "a.png")[1]


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"sparsity": None, "schedule": {"rounds": "many"}},
        {"sparsity": {"per_layer": [{"layer": "x", "params": "12", "nonzero": None}]}, "pruning": {"granularity": 3}},
        {"schedule": {"rounds": [{"step": 1, "train_loss": [None, float("inf")], "val": None}]}},
        {"schedule": {"rounds": [{"step": 1, "train_loss": [], "val": {"accuracy": 0.9}, "sparsity": 0.5}]}},
    ],
)
def test_a_broken_or_partial_report_still_gives_pictures(broken: dict[str, Any], tmp_path: Path) -> None:
    assert plots.write_job_plots(broken, tmp_path) == ["layers.png", "training.png"]
    for name in ("layers.png", "training.png"):
        _png_size(tmp_path / name)


def test_tradeoff_with_front_baseline_and_budget(tmp_path: Path) -> None:
    points = [
        {"label": "dense", "accuracy": 0.97, "latency_ms": {"cortex-a53-1200mhz": 9.0}, "size_bytes": 40_000,
         "is_baseline": True},
        {"label": "s=0.5", "accuracy": 0.96, "latency_ms": {"cortex-a53-1200mhz": 5.0}, "size_bytes": 22_000},
        {"label": "s=0.7", "accuracy": 0.90, "latency_ms": {"cortex-a53-1200mhz": 4.0}, "size_bytes": 15_000},
        {"label": "other device only", "accuracy": 0.5, "latency_ms": {"host": 0.1}, "size_bytes": 1_000},
    ]  # fmt: skip
    plots.tradeoff(points, tmp_path / "t.png", device="cortex-a53-1200mhz", budget_ms=4.5)
    plots.tradeoff(points, tmp_path / "u.png", device="cortex-a53-1200mhz")
    assert _png_size(tmp_path / "t.png") == (round(8 * 1.4 * plots.DPI), round(4.2 * plots.DPI))
    assert (tmp_path / "t.png").read_bytes() != (tmp_path / "u.png").read_bytes()  # the budget line is drawn
    plots.tradeoff([], tmp_path / "empty.png", device="host")
    plots.tradeoff([{"label": "flat", "accuracy": 0.9, "latency_ms": 2.0}], tmp_path / "flat.png", device="host")
    _png_size(tmp_path / "empty.png")
    _png_size(tmp_path / "flat.png")


def test_tensorboard_archive_holds_the_losses_of_every_round(
    channel_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    import tensorflow as tf

    workdir, report = channel_run
    with tarfile.open(workdir / "tensorboard.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    scalars: dict[str, list[tuple[int, float]]] = {}
    for event in tf.compat.v1.train.summary_iterator(str(events)):
        for value in event.summary.value:
            assert value.metadata.plugin_data.plugin_name == "scalars"
            scalars.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    rounds = report["schedule"]["rounds"]
    losses = [loss for r in rounds for loss in r["train_loss"]]
    assert len(losses) == 4
    assert scalars["epoch/train_loss"] == [(i, pytest.approx(v)) for i, v in enumerate(losses, start=1)]
    assert scalars["round/val_accuracy"] == [(r["step"], pytest.approx(r["val"]["accuracy"])) for r in rounds]
    assert scalars["round/sparsity"] == [(r["step"], pytest.approx(r["sparsity"])) for r in rounds]


def test_plots_import_neither_keras_nor_tensorflow() -> None:
    # The Celery worker draws sweep plots and must never import TensorFlow.
    code = "import sys, pruning.plots; print(sorted(m for m in ('keras', 'tensorflow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
