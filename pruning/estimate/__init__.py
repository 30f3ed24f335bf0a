"""Latency, RAM and flash of a `.tflite` file on a device profile, estimated op by op.

How an estimate is made
-----------------------
1. The flatbuffer is parsed (operators in execution order, tensor shapes and types, constant
   buffers and the share of exact zeros in each weight tensor).
2. Each operator falls into a cost class: `conv` (general CONV_2D), `conv1x1` (pointwise),
   `depthwise`, `fully_connected`, `pool`, `elementwise` (ADD, MUL, ReLU-like), `transcendental`
   (LOGISTIC, TANH, EXP, ...), `memory` (RESHAPE, CONCATENATION, PAD, QUANTIZE/DEQUANTIZE, SOFTMAX,
   MEAN, ...). Its compute dtype is that of its input activation (`int8`, `float32`, or `hybrid` for
   float activations with int8 weights).
3. Its time is `max(compute, memory traffic / bandwidth) + per-op overhead`, where
   `compute = (MACs / (peak MACs/cycle[dtype] * efficiency[class][dtype]) + outputs * cycles_per_element
   [class][dtype]) / clock / thread speed-up`. Efficiencies and per-element cycles are per runtime
   (TFLite Micro + CMSIS-NN, XNNPACK on Arm, XNNPACK on this x86 host); see contract/profiles/. An op
   whose kernel is not its class's has entries of its own (`op_efficiency`, `op_cycles_per_element`):
   BATCH_MATMUL, and in int8 the reference kernel that runs it when its right-hand side's zero point is
   not 0 (XNNPACK takes only symmetric ones), SQUARED_DIFFERENCE, SOFTMAX, GELU and the other ops
   XNNPACK leaves to TFLite's kernels.
4. The inference is the sum over ops plus a fixed invoke overhead; `low_ms`/`high_ms` multiply it
   by the profile's `error_band`, which is the calibration error measured for that profile
   (docs/benchmarks.md, "Device estimates").

Sparsity is treated honestly: zeros stored densely never speed anything up. TFLite Micro has no
sparse kernels at all. XNNPACK has a sparse path only for float models whose weights are stored in
sparse form (DENSIFY operators), starting with a 3x3 stride-2 conv on 3 channels, ending in MEAN,
and whose 1x1 convolutions are at least 2/3 zeros (tensorflow/lite/delegates/xnnpack/README.md,
"Sparse Inference"); only then are the 1x1 convs costed at `min(1, 2 * density)` of their dense
time (sparse kernels reach roughly half the dense per-MAC throughput; Elsen et al., "Fast Sparse
ConvNets", 2019). Channel-pruned models are smaller graphs, so their estimates fall by themselves.

RAM is the peak of live activation memory over the execution order (a linear scan of tensor
lifetimes) plus the runtime's own RAM; on LiteRT + XNNPACK the weights are repacked into RAM too.
On TFLite Micro profiles the tensor arena is measured with the tflite-micro Python interpreter when
it can load the model (pruning/micro.py). Flash is the `.tflite` size plus the runtime's code size.

Modules
-------
- `graph`: the `.tflite` flatbuffer parsed into `Tensor`, `Op` and `Graph`; the TFLite op-name sets.
- `costs`: `OpCost`, the cost class and work of every op (`analyse`), tile-padded MACs, per-op time.
- `memory`: peak activation bytes, XNNPACK-packed weights, RAM and the cold-weight (DRAM) term.
- `estimator`: `estimate`, `profile_tflite`, `breakdown`, XNNPACK's sparse path, the parse cache, and
  `default_devices` (a job without `devices`: host + every 1-thread profile of the model's class it fits).
- `microbench`, `calibrate`, `fit`: the host's single-op micro-benchmarks and the fit of the host tables from them
  (robust: floored timings, repeats until stable, a time budget, `CalibrationError` with a reason).
- `host_setup`: `ensure_host_tables`, calibrate once per CPU fingerprint when missing (`shears profile`);
  which tables the host profile uses, and the `basis` note naming their fingerprint: `contract.host_tables`.
- energy per inference (mJ, banded) and inferences per mAh: `estimator.energy_figures`, from each
  profile's cited `active_power_mw`.
- `__main__`: `python -m pruning.estimate calibrate-host [--quick] [--budget-s S] [--out F] [--if-missing]`.
"""

from pruning.estimate.calibrate import calibrate_host
from pruning.estimate.costs import OpCost, analyse, op_time_us, padded_macs
from pruning.estimate.estimator import (
    _CACHE as _CACHE,  # re-exported: cleared by bench/device_zoo.py, bench/device_families.py
)
from pruning.estimate.estimator import (
    breakdown,
    default_devices,
    estimate,
    job_devices,
    parsed,
    profile_tflite,
    sparse_path,
)
from pruning.estimate.graph import CONVS, ELEMENTWISE, POOLS, TRANSCENDENTAL, VIEWS, Graph, Op, Tensor, parse
from pruning.estimate.memory import cold_weights_us, packed_weight_bytes, peak_activation_bytes

__all__ = [
    "CONVS",
    "ELEMENTWISE",
    "POOLS",
    "TRANSCENDENTAL",
    "VIEWS",
    "Graph",
    "Op",
    "OpCost",
    "Tensor",
    "analyse",
    "breakdown",
    "calibrate_host",
    "default_devices",
    "cold_weights_us",
    "estimate",
    "job_devices",
    "op_time_us",
    "packed_weight_bytes",
    "padded_macs",
    "parse",
    "parsed",
    "peak_activation_bytes",
    "profile_tflite",
    "sparse_path",
]
