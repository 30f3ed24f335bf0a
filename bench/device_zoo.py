"""Device-estimate benchmark (issue 4): the per-op estimator against measurements and published figures.

    .venv/bin/python bench/device_zoo.py            # everything, writes docs/benchmarks.md's section
    .venv/bin/python bench/device_zoo.py --quick    # a few small models, no docs

1. Zoo: >= 20 Keras models built with weights=None (MobileNet V1/V2/V3 at several widths and
   resolutions, EfficientNet-B0, EfficientNet-Lite0, the four MLPerf Tiny models, the digits CNN, the
   HAR 1D CNN, unstructured-pruned and channel-thinned variants), each exported float32 and int8
   (pruning.export.to_tflite, random representative data). For each: the `host` estimate against
   the host measurement (pruning.host.measure_latency, LiteRT, 1 thread). Reports the share within
   +-10 / 15 / 20 %.
2. Published figures (../shared/reference/published-latency.csv): MLPerf Tiny on the Cortex-M4F
   profile, EfficientNet-Lite0..4 and MobileNet V1/V2 on the Cortex-A76 profile: estimate, published,
   ratio.
3. Time to profile one model on every device (no measurement), and with the host measurement.

Exports are cached in bench/out/device_zoo/ (delete it to rebuild). Results: bench/out/device_zoo.json.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from bench.common import write_section  # noqa: E402
from contract.devices import get_profile, load_profiles  # noqa: E402
from pruning import estimate as est  # noqa: E402
from pruning.export import to_tflite  # noqa: E402
from pruning.host import measure_latency  # noqa: E402

CACHE = ROOT / "bench" / "out" / "device_zoo"
PUBLISHED = ROOT.parent / "shared" / "reference" / "published-latency.csv"
DOCS = ROOT / "docs" / "benchmarks.md"
SECTION = "## Device estimates (issue 4)"
L = keras.layers


# ---------------------------------------------------------------------------------------------
# Models


def kws_dscnn(filters: int = 64) -> keras.Model:
    """MLPerf Tiny KWS DS-CNN (49x10 MFCC): 2,656,768 MACs at 64 filters."""
    x = inp = keras.Input((49, 10, 1))
    x = L.Conv2D(filters, (10, 4), strides=2, padding="same", use_bias=False)(x)
    x = L.ReLU()(L.BatchNormalization()(x))
    for _ in range(4):
        x = L.ReLU()(L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", use_bias=False)(x)))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 1, use_bias=False)(x)))
    x = L.Flatten()(L.AveragePooling2D(pool_size=(25, 5))(x))
    return keras.Model(inp, L.Dense(12, activation="softmax")(x), name=f"kws_dscnn_{filters}")


def vww_mobilenet(alpha: float = 0.25) -> keras.Model:
    """MLPerf Tiny VWW: MobileNetV1 alpha 0.25 at 96x96, AveragePooling + Dense 2."""
    x = inp = keras.Input((96, 96, 3))

    def c(n: int) -> int:  # the listed widths are those of alpha 0.25
        return max(4, int(round(n * alpha / 0.25)))

    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(c(8), 3, strides=2, padding="same", use_bias=False)(x)))
    for width, stride in (
        [(16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2)] + [(128, 1)] * 5 + [(256, 2), (256, 1)]
    ):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
        x = L.ReLU()(L.BatchNormalization()(x))
        x = L.ReLU()(L.BatchNormalization()(L.Conv2D(c(width), 1, use_bias=False)(x)))
    x = L.Flatten()(L.AveragePooling2D(pool_size=x.shape[1:3])(x))
    return keras.Model(inp, L.Dense(2, activation="softmax")(x), name=f"vww_mobilenet_{alpha}")


def resnet8(base: int = 16) -> keras.Model:
    """MLPerf Tiny IC ResNet-8 (CIFAR-10 32x32): 12,501,632 MACs at base 16."""
    x = inp = keras.Input((32, 32, 3))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(base, 3, padding="same")(x)))
    for filters, stride in [(base, 1), (base * 2, 2), (base * 4, 2)]:
        y = L.ReLU()(L.BatchNormalization()(L.Conv2D(filters, 3, strides=stride, padding="same")(x)))
        y = L.BatchNormalization()(L.Conv2D(filters, 3, padding="same")(y))
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride)(x)
        x = L.ReLU()(L.Add()([x, y]))
    x = L.Flatten()(L.AveragePooling2D(pool_size=8)(x))
    return keras.Model(inp, L.Dense(10, activation="softmax")(x), name=f"resnet8_{base}")


def ad_autoencoder() -> keras.Model:
    """MLPerf Tiny AD deep autoencoder: 640 -> 128 x4 -> 8 -> 128 x4 -> 640 (264,192 MACs)."""
    x = inp = keras.Input((640,))
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = L.ReLU()(L.BatchNormalization()(L.Dense(units)(x)))
    return keras.Model(inp, L.Dense(640)(x), name="ad_autoencoder")


def _round_filters(filters: float, width: float, divisor: int = 8) -> int:
    filters *= width
    new = max(divisor, int(filters + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * filters else new)


_EFFNET_BLOCKS = [  # kernel, repeats, in, out, expand, stride (EfficientNet-B0 = Lite0 without SE/swish)
    (3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1), (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1),
]  # fmt: skip
LITE = {0: (1.0, 1.0, 224), 1: (1.0, 1.1, 240), 2: (1.1, 1.2, 260), 3: (1.2, 1.4, 280), 4: (1.4, 1.8, 300)}


def efficientnet_lite(level: int, resolution: int | None = None) -> keras.Model:
    """EfficientNet-Lite (tensorflow/tpu efficientnet/lite): B0 blocks without squeeze-excite, ReLU6,
    stem (32) and head (1280) not scaled, first and last block repeats not scaled."""
    width, depth, size = LITE[level]
    size = resolution or size
    x = inp = keras.Input((size, size, 3))
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(32, 3, strides=2, padding="same", use_bias=False)(x)))
    cin = 32
    for i, (k, repeats, _, fout, expand, stride) in enumerate(_EFFNET_BLOCKS):
        fout = _round_filters(fout, width)
        n = repeats if i in (0, len(_EFFNET_BLOCKS) - 1) else int(math.ceil(depth * repeats))
        for r in range(n):
            s = stride if r == 0 else 1
            y = x
            if expand != 1:
                y = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(cin * expand, 1, use_bias=False)(y)))
            y = L.ReLU(6.0)(L.BatchNormalization()(L.DepthwiseConv2D(k, strides=s, padding="same", use_bias=False)(y)))
            y = L.BatchNormalization()(L.Conv2D(fout, 1, use_bias=False)(y))
            x = L.Add()([x, y]) if s == 1 and cin == fout else y
            cin = fout
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(1280, 1, use_bias=False)(x)))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Dense(1000, activation="softmax")(x), name=f"efficientnet_lite{level}_{size}")


def _apps(name: str, **kw: Any) -> Any:
    def build() -> keras.Model:
        fn = getattr(keras.applications, name)
        extra = {"include_preprocessing": False} if name.startswith("MobileNetV3") else {}
        return fn(weights=None, **extra, **kw)

    return build


def digits_cnn() -> keras.Model:
    from pruning.examples import digits_cnn as build

    return build(epochs=0)


def har_cnn() -> keras.Model:
    from pruning.examples import har_cnn as build

    return build(epochs=0)


def unstructured(builder: Any, sparsity: float = 0.8) -> Any:
    """The same model with `sparsity` of every conv/dense kernel zeroed by magnitude (per layer, numpy)."""

    def build() -> keras.Model:
        model = builder()
        rng = np.random.default_rng(0)
        for layer in model.layers:
            for w in layer.weights:
                if "kernel" not in w.path or len(w.shape) < 2:
                    continue
                value = np.asarray(w.numpy())
                if not np.any(value):
                    value = rng.normal(0, 0.05, value.shape).astype(value.dtype)
                cut = np.quantile(np.abs(value), sparsity)
                w.assign(np.where(np.abs(value) <= cut, 0, value).astype(value.dtype))
        return model

    return build


ZOO: dict[str, Any] = {
    "mobilenet_v1_1.0_224": _apps("MobileNet", alpha=1.0, input_shape=(224, 224, 3)),
    "mobilenet_v1_0.5_160": _apps("MobileNet", alpha=0.5, input_shape=(160, 160, 3)),
    "mobilenet_v1_0.25_128": _apps("MobileNet", alpha=0.25, input_shape=(128, 128, 3)),
    "mobilenet_v2_1.0_224": _apps("MobileNetV2", alpha=1.0, input_shape=(224, 224, 3)),
    "mobilenet_v2_0.5_160": _apps("MobileNetV2", alpha=0.5, input_shape=(160, 160, 3)),
    "mobilenet_v2_0.35_96": _apps("MobileNetV2", alpha=0.35, input_shape=(96, 96, 3)),
    "mobilenet_v3_small_1.0_224": _apps("MobileNetV3Small", alpha=1.0, input_shape=(224, 224, 3)),
    "mobilenet_v3_small_0.75_128": _apps("MobileNetV3Small", alpha=0.75, input_shape=(128, 128, 3)),
    "mobilenet_v3_large_1.0_160": _apps("MobileNetV3Large", alpha=1.0, input_shape=(160, 160, 3)),
    "mobilenet_v3_large_min_1.0_160": _apps(
        "MobileNetV3Large", alpha=1.0, minimalistic=True, input_shape=(160, 160, 3)
    ),
    "efficientnet_b0_224": _apps("EfficientNetB0", input_shape=(224, 224, 3)),
    "efficientnet_lite0_224": lambda: efficientnet_lite(0),
    "mlperf_kws_dscnn": kws_dscnn,
    "mlperf_vww_mobilenet_0.25": vww_mobilenet,
    "mlperf_ic_resnet8": resnet8,
    "mlperf_ad_autoencoder": ad_autoencoder,
    "digits_cnn": digits_cnn,
    "har_cnn": har_cnn,
    "mobilenet_v2_1.0_160_unstructured80": unstructured(_apps("MobileNetV2", alpha=1.0, input_shape=(160, 160, 3))),
    "mobilenet_v2_1.0_160": _apps("MobileNetV2", alpha=1.0, input_shape=(160, 160, 3)),
    "resnet8_unstructured80": unstructured(resnet8),
    "resnet8_thin_half": lambda: resnet8(8),
    "kws_dscnn_thin_half": lambda: kws_dscnn(32),
    "mobilenet_v2_thin_half_160": _apps("MobileNetV2", alpha=0.5, input_shape=(160, 160, 3)),
}
QUICK = ["mlperf_kws_dscnn", "mlperf_ic_resnet8", "mlperf_ad_autoencoder", "digits_cnn", "har_cnn"]


def tflite_for(name: str, builder: Any, quantization: str, cache: Path) -> bytes:
    """The cached export of zoo model `name` (float32 = "none", or "int8")."""
    path = cache / f"{name}.{quantization}.tflite"
    if path.exists():
        return path.read_bytes()
    keras.utils.set_random_seed(0)
    model = builder()
    shape = tuple(int(d) for d in model.input_shape[1:])
    rep = np.random.default_rng(0).uniform(-1, 1, (8, *shape)).astype(np.float32)
    data = to_tflite(model, quantization, rep)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    keras.backend.clear_session()
    return data


# ---------------------------------------------------------------------------------------------
# Runs


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


def run_zoo(names: list[str], cache: Path, passes: int = 3, max_extra: int = 8) -> list[dict[str, Any]]:
    """Host estimate vs measurement for every zoo export.

    The measurement is pruning.host.measure_latency (LiteRT, 1 thread, median of up to 50 runs). This
    2-core machine is shared, so every export is measured in `passes` passes spread over the run, then
    again (up to `max_extra` more passes) until its two lowest medians agree within 5%; the lowest median
    is kept (other processes only ever add time). The criterion never looks at the estimate."""
    host = get_profile("host")
    exports = []
    for name in names:
        for quant, label in (("none", "float32"), ("int8", "int8")):
            t0 = time.perf_counter()
            data = tflite_for(name, ZOO[name], quant, cache)
            exports.append((name, label, data, time.perf_counter() - t0))
    measured: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for i in range(passes):
        print(f"measurement pass {i + 1}/{passes} (load average {_load():.1f})", flush=True)
        for name, label, data, _ in exports:
            measured.setdefault((name, label), []).append(measure_latency(data, threads=1))

    def stable(runs: list[dict[str, Any]]) -> bool:
        low = sorted(m["measured_ms"] for m in runs)
        return low[1] <= 1.05 * low[0]

    for extra in range(max_extra):  # keep measuring the exports whose two lowest medians disagree
        unstable = [(n, lab, d) for n, lab, d, _ in exports if not stable(measured[(n, lab)])]
        if not unstable:
            break
        print(f"extra pass {extra + 1}: {len(unstable)} unstable exports (load average {_load():.1f})", flush=True)
        time.sleep(5)
        for name, label, data in unstable:
            measured[(name, label)].append(measure_latency(data, threads=1))
    rows = []
    for name, label, data, built in exports:
        e = est.estimate(data, host)
        runs = measured[(name, label)]
        best = min(runs, key=lambda m: m["measured_ms"])
        ratio = e["estimate_ms"] / best["measured_ms"]
        graph, costs = est.parsed(data)
        row = {
            "model": name,
            "dtype": label,
            "macs_m": round(sum(c.macs for c in costs) / 1e6, 2),
            "ops": len(graph.ops),
            "tflite_kb": round(len(data) / 1024, 1),
            "estimate_ms": e["estimate_ms"],
            "measured_ms": round(best["measured_ms"], 4),
            "measured_all_ms": [round(m["measured_ms"], 4) for m in runs],
            "load_average_end": round(_load(), 2),
            "p10_ms": round(best["p10_ms"], 4),
            "p90_ms": round(best["p90_ms"], 4),
            "ratio": round(ratio, 3),
            "build_s": round(built, 1),
        }
        rows.append(row)
        print(
            f"{name:40s} {label:7s} {row['macs_m']:9.2f} M  est {e['estimate_ms']:9.3f} ms  "
            f"meas {row['measured_ms']:9.3f} ms  ratio {ratio:5.2f}  (passes {row['measured_all_ms']})",
            flush=True,
        )
    return rows


def shares(rows: list[dict[str, Any]]) -> dict[str, float]:
    errs = [abs(r["ratio"] - 1) for r in rows]
    return {f"within_{p}": round(sum(e <= p / 100 for e in errs) / len(errs), 3) for p in (10, 15, 20)} | {
        "n": len(errs),
        "median_abs_error": round(float(np.median(errs)), 3),
        "max_abs_error": round(float(np.max(errs)), 3),
    }


PUBLISHED_MODELS: dict[str, tuple[Any, str]] = {
    "mlperf-tiny-kws-dscnn": (kws_dscnn, "mlperf_kws_dscnn"),
    "mlperf-tiny-vww-mobilenetv1-0.25": (vww_mobilenet, "mlperf_vww_mobilenet_0.25"),
    "mlperf-tiny-ic-resnet8": (resnet8, "mlperf_ic_resnet8"),
    "mlperf-tiny-ad-fc-autoencoder": (ad_autoencoder, "mlperf_ad_autoencoder"),
    **{
        f"efficientnet-lite{i}": ((lambda i=i: efficientnet_lite(i)), f"efficientnet_lite{i}_{LITE[i][2]}")
        for i in range(5)
    },
    "mobilenet-v1-1.0-224": (_apps("MobileNet", alpha=1.0, input_shape=(224, 224, 3)), "mobilenet_v1_1.0_224"),
    "mobilenet-v2-1.0-224": (_apps("MobileNetV2", alpha=1.0, input_shape=(224, 224, 3)), "mobilenet_v2_1.0_224"),
}


A75_PER_CLOCK = 1.26


def published_profile(row: dict[str, str]) -> tuple[Any, str]:
    """The profile a published row is compared with, and how it was adapted to the row's device."""
    threads = int(row["threads"])
    core, clock = row["core"], float(row["clock_mhz"])
    if core.startswith("cortex-m4f"):
        return get_profile("cortex-m4f-120mhz"), "cortex-m4f-120mhz"
    name = "cortex-a76-2400mhz" + ("" if threads == 1 else f"-{threads}t")
    profile = get_profile(name)
    note = name
    if abs(profile.clock_mhz - clock) > 1:
        profile = dataclasses.replace(profile, clock_mhz=clock)
        note += f" at {clock:g} MHz"
    if "big core" in core and "a76" not in core:
        # Pixel 3a: Kryo 360 Gold = Cortex-A75. Same 2x128-bit NEON as the A76 but lower IPC: Arm's A76
        # launch figure is +35% performance at 3.0 GHz vs the A75 at 2.8 GHz, i.e. ~1.26x per clock.
        profile = dataclasses.replace(profile, clock_mhz=clock / A75_PER_CLOCK)
        note += f", A75 = A76 / {A75_PER_CLOCK:g} per clock"
    return profile, note


def run_published(cache: Path) -> list[dict[str, Any]]:
    rows = []
    with PUBLISHED.open() as fh:
        for row in csv.DictReader(fh):
            builder, key = PUBLISHED_MODELS[row["model"]]
            quant = "int8" if row["precision"] == "int8" else "none"
            data = tflite_for(key, builder, quant, cache)
            profile, note = published_profile(row)
            e = est.estimate(data, profile)
            published = float(row["latency_ms"])
            out = {
                "model": row["model"],
                "precision": row["precision"],
                "device": f"{row['device']} ({row['core']}, {row['clock_mhz']} MHz, {row['threads']}t)",
                "profile": note,
                "estimate_ms": e["estimate_ms"],
                "published_ms": published,
                "ratio": round(e["estimate_ms"] / published, 3),
                "macs_m": round(sum(c.macs for c in est.analyse(est.parse(data))) / 1e6, 2),
            }
            rows.append(out)
            print(
                f"{row['model']:34s} {row['precision']:5s} est {out['estimate_ms']:9.2f} ms  "
                f"published {published:8.2f} ms  ratio {out['ratio']:5.2f}  [{note}]",
                flush=True,
            )
    return rows


def run_timing(cache: Path) -> dict[str, Any]:
    data = tflite_for("mobilenet_v2_1.0_224", ZOO["mobilenet_v2_1.0_224"], "none", cache)
    from pruning import micro

    devices = list(load_profiles())
    est._CACHE.clear()
    micro._MEMO.clear()
    t0 = time.perf_counter()
    est.profile_tflite(data, devices, measure_host=False)
    estimate_s = time.perf_counter() - t0
    est._CACHE.clear()
    micro._MEMO.clear()
    t0 = time.perf_counter()
    est.profile_tflite(data, devices, measure_host=True)
    total_s = time.perf_counter() - t0
    out = {
        "model": "mobilenet_v2_1.0_224 float32",
        "devices": len(devices),
        "estimate_all_devices_s": round(estimate_s, 3),
        "with_host_measurement_s": round(total_s, 3),
    }
    print(f"profile timing: {out}", flush=True)
    return out


# ---------------------------------------------------------------------------------------------
# Calibration of the non-host runtimes against the published rows (`--calibrate`)

PROFILES = ROOT / "contract" / "profiles"


def _published_rows() -> list[dict[str, str]]:
    with PUBLISHED.open() as fh:
        return list(csv.DictReader(fh))


def _loglsq(ratios: list[float]) -> float:
    return float(sum(math.log(r) ** 2 for r in ratios))


def _golden(f: Any, lo: float, hi: float, iters: int = 40) -> float:
    """Minimise a unimodal f on [lo, hi] (log-spaced golden section)."""
    a, b = math.log(lo), math.log(hi)
    g = (math.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(iters):
        if f(math.exp(c)) < f(math.exp(d)):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return math.exp((a + b) / 2)


def calibrate(cache: Path) -> dict[str, Any]:
    """Fit TFLite Micro int8 efficiencies (MLPerf Tiny on the M4F) and the XNNPACK-Arm level per dtype and
    parallel efficiency (A76/A75 rows); write them into contract/profiles/runtimes.json."""
    from contract import devices

    est.estimator.CACHE_SIZE = 64  # the parse cache lives in pruning/estimate/estimator.py
    runtimes = json.loads((PROFILES / "runtimes.json").read_text())
    host = json.loads((PROFILES / "host.json").read_text())
    rows = _published_rows()
    models = {}
    for row in rows:
        builder, key = PUBLISHED_MODELS[row["model"]]
        quant = "int8" if row["precision"] == "int8" else "none"
        models[(row["model"], row["precision"])] = tflite_for(key, builder, quant, cache)

    def ratios(filter_fn: Any) -> list[tuple[dict[str, str], float]]:
        devices.clear_cache()
        out = []
        for row in rows:
            if filter_fn(row):
                profile, _ = published_profile(row)
                e = est.estimate(models[(row["model"], row["precision"])], profile)
                out.append((row, e["estimate_ms"] / float(row["latency_ms"])))
        return out

    def write() -> None:
        (PROFILES / "runtimes.json").write_text(json.dumps(runtimes, indent=1) + "\n")

    # 1. TFLite Micro + CMSIS-NN, int8: conv (= conv1x1: the same im2col/mat-mult core), depthwise and
    #    fully-connected efficiencies; the per-element and overhead constants stay as documented.
    tflm = runtimes["runtimes"]["tflm-cmsis-nn"]

    def is_m4(r: dict[str, str]) -> bool:
        return r["core"].startswith("cortex-m4f")

    def m4_models(*names: str) -> Any:
        return lambda r: is_m4(r) and r["model"] in names

    def set_tflm(v: dict[str, float]) -> None:
        eff = tflm["efficiency"]
        eff["conv"]["int8"] = eff["conv1x1"]["int8"] = round(v["conv"], 5)
        eff["depthwise"]["int8"] = round(v["depthwise"], 5)
        eff["fully_connected"]["int8"] = round(v["fully_connected"], 5)
        write()

    def fit(values: dict[str, float], key: str, setter: Any, rows_of: Any, lo: float, hi: float) -> None:
        def loss(x: float) -> float:
            setter(values | {key: x})
            return _loglsq([r for _, r in ratios(rows_of)])

        values[key] = _golden(loss, lo, hi)
        setter(values)

    v = {"conv": 0.1, "depthwise": 0.05, "fully_connected": 0.1}
    for _ in range(3):  # coordinate descent: each class has the model(s) it dominates
        fit(v, "fully_connected", set_tflm, m4_models("mlperf-tiny-ad-fc-autoencoder"), 0.005, 1.0)
        fit(v, "conv", set_tflm, m4_models("mlperf-tiny-ic-resnet8"), 0.005, 1.0)
        fit(
            v, "depthwise", set_tflm, m4_models("mlperf-tiny-kws-dscnn", "mlperf-tiny-vww-mobilenetv1-0.25"), 0.002, 1.0
        )
    m4 = ratios(is_m4)
    conv, dw, fc = v["conv"], v["depthwise"], v["fully_connected"]
    print("TFLM int8 efficiencies:", v)
    for row, r in m4:
        print(f"  {row['model']:34s} ratio {r:.3f}")

    # 2. XNNPACK on Arm: per-class shape from the host micro-benchmarks, level per dtype; int8 depthwise
    #    runs 16-bit MACs (twice the float32 lanes) rather than SDOT.
    arm = runtimes["runtimes"]["xnnpack-arm"]
    host_eff = host["runtime"]["efficiency"]
    arm["cycles_per_element"] = host["runtime"]["cycles_per_element"]
    arm["op_cycles_per_element"] = host["runtime"]["op_cycles_per_element"]
    arm["reference_macs_per_cycle"] = {k: host["profile"]["macs_per_cycle"][k] for k in ("float32", "int8")}

    def set_arm(a: dict[str, float]) -> None:
        eff: dict[str, dict[str, float]] = {}
        for cls, row in host_eff.items():
            eff[cls] = {"float32": round(min(1.0, a["k32"] * row["float32"]), 4)}
            eff[cls]["int8"] = round(min(1.0, a["k8"] * row["int8"]), 4)
        # 8 int16 lanes per 128-bit MAC vs 32 int8 MACs/cycle with SDOT, 8 float32: 2x the float32 rate
        eff["depthwise"]["int8"] = round(min(1.0, eff["depthwise"]["float32"] * 2 * 8 / 32), 4)
        for cls in eff:
            eff[cls]["hybrid"] = eff[cls]["int8"]
        arm["efficiency"] = eff
        arm["parallel_efficiency"] = round(a["par"], 4)
        write()

    def one_thread(r: dict[str, str]) -> bool:
        return not is_m4(r) and int(r["threads"]) == 1

    def lite(precision: str) -> Any:
        return lambda r: r["model"].startswith("efficientnet-lite") and r["precision"] == precision

    a = {"k32": 0.5, "k8": 0.5, "par": 0.8}
    for _ in range(3):
        fit(a, "k32", set_arm, one_thread, 0.05, 2.0)
        fit(a, "par", set_arm, lite("fp32"), 0.05, 1.0)
        fit(a, "k8", set_arm, lite("int8"), 0.02, 2.0)
    k32, k8, par = a["k32"], a["k8"], a["par"]
    a76 = ratios(lambda r: not is_m4(r))
    print(f"XNNPACK-Arm: float32 level {k32:.3f}, int8 level {k8:.3f}, parallel efficiency {par:.3f}")
    for row, r in a76:
        print(f"  {row['model']:34s} {row['precision']:5s} {row['threads']}t ratio {r:.3f}")
    record = {
        "tflm-cmsis-nn": {"efficiency_int8": {"conv": conv, "depthwise": dw, "fully_connected": fc},
                          "rows": {row["model"]: round(r, 3) for row, r in m4}},
        "xnnpack-arm": {"float32_level": k32, "int8_level": k8, "parallel_efficiency": par,
                        "rows": {f"{r['model']} {r['precision']} {r['threads']}t": round(x, 3) for r, x in a76}},
        "command": ".venv/bin/python bench/device_zoo.py --calibrate",
    }  # fmt: skip
    runtimes["calibration"] = record
    write()
    devices.clear_cache()
    return record


# ---------------------------------------------------------------------------------------------
# Report


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(zoo: list[dict[str, Any]], published: list[dict[str, Any]], timing: dict[str, Any], cmd: str) -> str:
    s = shares(zoo)
    by_dtype = {d: shares([r for r in zoo if r["dtype"] == d]) for d in ("float32", "int8")}
    profiles = load_profiles()
    out = [
        SECTION,
        "",
        f"Command: `{cmd}` (about 10 minutes on this 2-core machine the first time; exports are cached in "
        "`bench/out/device_zoo/`). Raw results: `bench/out/device_zoo.json`. The constants are re-derived with "
        "`.venv/bin/python -m pruning.estimate calibrate-host` (host, single-op micro-benchmarks, ~2 min) and "
        "`.venv/bin/python bench/device_zoo.py --calibrate` (MCU and Arm tables against the published rows).",
        "",
        "The estimator (`pruning/estimate/`) costs each TFLite op from its class (general conv, 1x1 conv, "
        "depthwise, fully connected, pooling, elementwise, transcendental, memory-bound), dtype and shape: "
        "`max(compute, traffic / bandwidth) + per-op overhead`, compute = tile-padded MACs / (peak MACs/cycle x "
        "class efficiency) + output elements x cycles per element (+ fixed setup cycles per op on the host); where a "
        "model's weights + activations exceed the effective last-level cache, the excess is re-read from DRAM "
        "each inference. Profiles and their sources: "
        "`contract/profiles/*.json`; `shears devices --json` lists them.",
        "",
        "### Host: estimate vs measurement",
        "",
        "Host constants come only from single-op micro-benchmarks (`python -m pruning.estimate calibrate-host`, "
        "listed in `contract/profiles/host.json` under `micro_benchmarks`), never from these whole models. "
        "Measurement: `pruning.host.measure_latency` (LiteRT + XNNPACK, 1 thread, median of up to 50 runs). The "
        "machine is a shared 2-core VM where other jobs run, so every export is measured in 3 passes, then again "
        "until its two lowest medians agree within 5% (at most 8 extra passes), and the lowest median is kept.",
        "",
        _table(
            ["", "models", "within ±10%", "within ±15%", "within ±20%", "median abs. error", "max abs. error"],
            [
                [
                    k,
                    v["n"],
                    f"{v['within_10']:.0%}",
                    f"{v['within_15']:.0%}",
                    f"{v['within_20']:.0%}",
                    f"{v['median_abs_error']:.1%}",
                    f"{v['max_abs_error']:.1%}",
                ]
                for k, v in [("all", s), ("float32", by_dtype["float32"]), ("int8", by_dtype["int8"])]
            ],  # fmt: skip
        ),
        "",
        "<details><summary>Per model</summary>",
        "",
        _table(
            ["model", "dtype", "MMACs", ".tflite KiB", "estimate ms", "measured ms", "estimate/measured"],
            [
                [r["model"], r["dtype"], r["macs_m"], r["tflite_kb"], r["estimate_ms"], r["measured_ms"], r["ratio"]]
                for r in zoo
            ],  # fmt: skip
        ),
        "",
        "</details>",
        "",
        "### Published figures: estimate vs published",
        "",
        "Rows of `shared/reference/published-latency.csv`. The models are rebuilt in Keras with random weights "
        "(MLPerf Tiny from `mlperf-tiny-models.md`; MobileNet V1/V2 via `keras.applications`, exact; "
        "EfficientNet-Lite0..4 rebuilt from the EfficientNet-B0 block table without squeeze-excite, with ReLU6, "
        "unscaled stem/head and first/last block repeats, as in tensorflow/tpu's lite builder, minus its "
        "input normalisation).",
        "",
        _table(
            ["model", "precision", "published on", "profile used", "MMACs", "estimate ms", "published ms", "ratio"],
            [
                [
                    r["model"],
                    r["precision"],
                    r["device"],
                    r["profile"],
                    r["macs_m"],
                    r["estimate_ms"],
                    r["published_ms"],
                    r["ratio"],
                ]
                for r in published
            ],  # fmt: skip
        ),
        "",
        _published_summary(published),
        "",
        "What was fitted (`bench/device_zoo.py --calibrate`): on the M4F, three int8 efficiencies (conv = 1x1 conv, "
        "depthwise, fully connected) on the four MLPerf Tiny rows, so ResNet-8 (the only conv-only model) and the "
        "AD autoencoder (the only FC model) land at 1.00 by construction and KWS / VWW, which share the depthwise "
        "value, show the real residual; on the A76, three numbers (float32 level, int8 level, 4-thread scaling) "
        "on the twelve A76/A75 rows, the per-class shape coming from the host micro-benchmarks. The 4-thread "
        "scaling came out at its bound of 1.0 (the Pixel 4's prime core runs at 2.84 GHz); the 2-thread A53/A55 "
        "variants use an assumed 0.8.",
        "",
        "### Calibration per profile",
        "",
        "`band` is the profile's `error_band`: `low_ms`/`high_ms` are the estimate times these factors.",
        "",
        _table(
            [
                "profile",
                "runtime",
                "threads",
                "band",
                "tables rest on",
                "how far (ratio estimate/published or measured)",
            ],
            [
                [
                    p.name,
                    p.runtime,
                    p.threads,
                    f"x{p.error_band[0]:g}..x{p.error_band[1]:g}",
                    _basis(p),
                    _profile_error(p.name, zoo, published),
                ]
                for p in profiles.values()
            ],  # fmt: skip
        ),
        "",
        "Honesty rules the estimator applies (tested in `tests/pruning/test_estimate.py`):",
        "",
        "- Unstructured zeros never speed up TFLite Micro (no sparse kernels), nor LiteRT on the host (our exporter "
        "stores zeros densely). XNNPACK's sparse path is applied only when its documented rules hold (float model, "
        "weights stored sparse with DENSIFY, 3x3 stride-2 stem on 3 channels, MEAN at the end, >= 2/3 zeros in the "
        "1x1 convs; `tensorflow/lite/delegates/xnnpack/README.md`, 'Sparse Inference'); the `*_unstructured80` "
        "rows above estimate exactly as their dense twins and measure the same.",
        "- Channel-thinned models are smaller graphs: `resnet8_thin_half`, `kws_dscnn_thin_half` and "
        "`mobilenet_v2_thin_half_160` estimate (and measure) faster without any special case.",
        "- RAM = peak of live activations over the execution order (linear scan of tensor lifetimes) + runtime; on "
        "LiteRT + XNNPACK the repacked weights are added; on the TFLite Micro profiles the tensor arena is measured "
        "with the tflite-micro Python interpreter in a child process (`pruning/micro.py`; 64-bit host build, so "
        "its bookkeeping tail is larger than on a 32-bit MCU), falling back to the computed peak when TFLM cannot "
        "load the model (e.g. it aborts on EfficientNet-Lite4 int8). `fits` is false when RAM or flash "
        "(.tflite + runtime code) exceed the device's.",
        "- A float model on an MCU profile is costed with float32 reference kernels (no CMSIS-NN); that table is "
        "an assumption (~50 cycles/MAC on the M4F), not calibrated, and `basis` says so.",
        "",
        "Known limits: the host measurements come from a shared 2-core VM, so each export is measured in several "
        "passes and the lowest median kept; the remaining misses are small-model int8 cases (a few microseconds, "
        "where the invoke overhead dominates) and EfficientNet-B0 int8 (its swish/squeeze-excite int8 MULs are "
        "costed from a same-shape MUL micro-benchmark and come out ~25% high). The Cortex-A53/A55 tables are the "
        "A76-calibrated XNNPACK tables moved by ISA peaks, with no published row to check them: their bands are "
        "wide. The M4F tables reproduce TFLite Micro v2.3.1-era CMSIS-NN (the published rows); current CMSIS-NN "
        "releases are faster, so treat those estimates as conservative.",
        "",
        "### Time to profile",
        "",
        f"{timing['model']}, all {timing['devices']} device profiles: estimate only "
        f"{timing['estimate_all_devices_s']:.2f} s (target < 2 s; includes parsing, the per-op model and the "
        f"tflite-micro arena measurement for the MCU profiles), with the host measurement "
        f"{timing['with_host_measurement_s']:.2f} s.",
        "",
    ]
    return "\n".join(out)


def _basis(p: Any) -> str:
    if p.name == "host":
        return "single-op micro-benchmarks on this machine (`contract/profiles/host.json`)"
    if p.runtime_key.startswith("tflm"):
        if p.name.startswith("cortex-m4f"):
            return (
                "int8 efficiencies fitted to the MLPerf Tiny M4F rows; per-element costs from kernel instruction counts"
            )
        return "cortex-m4f-120mhz tables, moved by clock and ISA ratio (macs_per_cycle)"
    return (
        "XNNPACK class shape from the host micro-benchmarks; level per dtype and thread scaling fitted to the "
        "A76/A75 rows"
    )


def _published_summary(published: list[dict[str, Any]]) -> str:
    groups: dict[str, list[float]] = {}
    for r in published:
        key = "Cortex-M4F (MLPerf Tiny, int8)" if "m4f" in r["profile"] else f"Cortex-A76 / A75 ({r['precision']})"
        groups.setdefault(key, []).append(r["ratio"])
    parts = []
    for k, v in groups.items():
        parts.append(f"{k}: ratios {min(v):.2f}..{max(v):.2f} (geometric mean {math.exp(np.mean(np.log(v))):.2f})")
    return "Summary: " + "; ".join(parts) + "."


def _profile_error(name: str, zoo: list[dict[str, Any]], published: list[dict[str, Any]]) -> str:
    if name == "host":
        s = shares(zoo)
        return f"zoo: {s['within_15']:.0%} within ±15%, median abs. error {s['median_abs_error']:.1%}"
    rows = [r for r in published if r["profile"].split(" ")[0] == name]
    if rows:
        return ", ".join(f"{r['model']} {r['precision']} {r['ratio']:.2f}" for r in rows)
    if name.startswith(("cortex-m7", "cortex-m33")):
        return "derived from cortex-m4f-120mhz by clock and ISA ratios; no published row"
    if name.startswith(("cortex-a53", "cortex-a55")):
        return "XNNPACK tables of the A76 calibration scaled by ISA peaks; no published row (wide band)"
    return "thread variant; see the rows of its base profile"


def write_docs(text: str) -> None:
    write_section(SECTION, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few small models; does not write the docs")
    parser.add_argument("--only", nargs="*", help="zoo models to run")
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--passes", type=int, default=3, help="measurement passes (lowest median kept)")
    parser.add_argument("--skip-published", action="store_true")
    parser.add_argument("--cache", default=str(CACHE))
    parser.add_argument("--calibrate", action="store_true", help="re-fit the MCU and Arm tables, then exit")
    parser.add_argument(
        "--docs-only", action="store_true", help="rewrite the docs section from bench/out/device_zoo.json"
    )
    parser.add_argument("--timing-only", action="store_true", help="re-time profiling, then rewrite the docs section")
    args = parser.parse_args()
    cache = Path(args.cache)
    if args.docs_only or args.timing_only:
        saved = json.loads((ROOT / "bench" / "out" / "device_zoo.json").read_text())
        if args.timing_only:
            saved["timing"] = run_timing(cache)
            (ROOT / "bench" / "out" / "device_zoo.json").write_text(json.dumps(saved, indent=1))
        text = markdown(saved["zoo"], saved["published"], saved["timing"], ".venv/bin/python bench/device_zoo.py")
        write_docs(text)
        print(text)
        return 0
    if args.calibrate:
        print(json.dumps(calibrate(cache), indent=1))
        return 0
    names = args.only or (QUICK if args.quick else list(ZOO))
    t0 = time.perf_counter()
    zoo = run_zoo(names, cache, args.passes)
    s = shares(zoo)
    print(f"\nhost estimate vs measured over {s['n']} exports: within ±10% {s['within_10']:.0%}, "
          f"±15% {s['within_15']:.0%}, ±20% {s['within_20']:.0%}; median |error| {s['median_abs_error']:.1%}")  # noqa: E501  # fmt: skip
    published = [] if args.skip_published or args.quick else run_published(cache)
    timing = run_timing(cache) if not args.quick else {}
    out = {"zoo": zoo, "shares": s, "published": published, "timing": timing, "seconds": time.perf_counter() - t0}
    (ROOT / "bench" / "out").mkdir(parents=True, exist_ok=True)
    (ROOT / "bench" / "out" / "device_zoo.json").write_text(json.dumps(out, indent=1))
    cmd = ".venv/bin/python bench/device_zoo.py"
    if not (args.quick or args.no_docs or args.only or args.skip_published):
        text = markdown(zoo, published, timing, cmd)
        print("\n" + text)
        write_docs(text)
        print(f"wrote {DOCS.relative_to(ROOT)}")
    print(f"done in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
