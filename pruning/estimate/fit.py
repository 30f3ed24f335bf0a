"""The fits of host calibration (`pruning.estimate.calibrate`): per class and dtype, the efficiency, cycles
per element, setup cycles and channel tile that best reproduce the single-op micro-benchmarks in the
estimator's own form (`pruning.estimate.costs.op_time_us`); per op with a kernel of its own, its efficiency."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from pruning.estimate.costs import OpCost, padded_inputs, padded_macs, padded_work, table_op

# Channel tiles (nr output channels, kr input channels per tap) the kernels may round up to. Up to 64: x86 AMX
# int8 kernels (XNNPACK's qs8 *c4__avx512amx) work on 16-row x 64-byte tiles, 64 output channels at a time, and
# take the reduction in 64-byte blocks; without these candidates a CPU with AMX cannot be fitted.
_GEMM_TILES = [(nr, kr) for nr in (1, 8, 16, 32, 64) for kr in (1, 2, 4, 8, 16, 32, 64)]
_TILE_CANDIDATES = {
    "conv": _GEMM_TILES,
    "conv1x1": _GEMM_TILES,
    "depthwise": [(nr, 1) for nr in (1, 4, 8, 16, 32, 64)],
    "fully_connected": [(nr, kr) for nr in (1, 4, 8, 16, 32, 64) for kr in (1, 4, 8, 16, 32, 64)],
}


def _grid_fit(
    macs: NDArray[Any],
    work: NDArray[Any],
    floor_us: NDArray[Any],
    net_us: NDArray[Any],
    clock: float,
    peak: float,
    fixed_us: float = 0.0,
    extra_cycles: NDArray[Any] | None = None,
) -> tuple[float, float, float, float]:
    """Efficiency, cycles per element and fixed cycles per op minimising the RMS log error of
    `max((macs / (peak * eff) + work * cpe + setup) / clock, floor)` against the measured times: the
    estimator's own form, so memory-bound cases do not inflate the compute constants. Errors are taken on
    the whole inference time (`fixed_us` = invoke + per-op overhead added back), so sub-microsecond ops
    do not dominate through the noise of a difference."""
    effs = np.geomspace(0.005, 3.0, 80) if macs.any() else np.array([1.0])
    cpes = np.concatenate([[0.0], np.geomspace(0.005, 60.0, 80)])
    setups = np.concatenate([[0.0], np.geomspace(20.0, 20000.0, 24)]) if macs.any() else np.array([0.0])
    best = (np.inf, 1.0, 0.0, 0.0)
    for eff in effs:
        comp = macs / (peak * eff) + (extra_cycles if extra_cycles is not None else 0.0)
        cyc = comp[None, None, :] + cpes[:, None, None] * work[None, None, :] + setups[None, :, None]
        pred = np.maximum(cyc / clock, floor_us[None, None, :])
        err = np.sqrt(np.mean(np.log((pred + fixed_us) / (net_us + fixed_us)) ** 2, axis=2))
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        if err[i, j] < best[0]:
            best = (float(err[i, j]), float(eff), float(cpes[i]), float(setups[j]))
    return best[1], best[2], best[3], best[0]


INPUT_CLASSES = ("conv", "conv1x1", "fully_connected")
"""GEMM classes with a term per element of the input operand (`costs.padded_inputs`): each input element is
loaded (broadcast) into the kernel once per row tile, which output channels do not amortise when they are few.
Measured on a Xeon: it takes the float conv micro-benchmarks from 0.142 to 0.094 rms log error and a 3x3
48->12-channel conv, which the fit never saw, from 0.75x to 0.92x."""
_PER_INPUT = np.concatenate([[0.0], np.geomspace(0.01, 4.0, 18)])


def fit_class(
    cls: str, samples: list[tuple[OpCost, float]], clock: float, peak: float, bw_gbps: float, fixed_us: float = 0.0
) -> tuple[tuple[int, int], float, float, float, float, float]:
    """Channel tile, efficiency, cycles per element, setup cycles, RMS log error and cycles per input element
    for one class and dtype. The per-element term of a MAC class counts tile-padded outputs
    (`costs.padded_work`), as the kernels requantise and store whole register tiles; the per-input term
    (`INPUT_CLASSES` only, 0 elsewhere) is fitted for the chosen tile, 0 when it does not help."""
    net = np.array([n for _, n in samples])
    floor = np.array([(c.act_bytes + c.weight_bytes) / (bw_gbps * 1e3) for c, _ in samples])
    best: tuple[float, tuple[int, int], float, float, float] | None = None
    for tile in _TILE_CANDIDATES.get(cls, [(1, 1)]):
        macs = np.array([padded_macs(c, tile) for c, _ in samples], dtype=float)
        work = np.array([padded_work(c, tile) for c, _ in samples], dtype=float)
        eff, cpe, setup, err = _grid_fit(macs, work, floor, net, clock, peak, fixed_us)
        # prefer the smaller tile unless a bigger one explains the data clearly better
        if best is None or err < best[0] * 0.97:
            best = (err, tile, eff, cpe, setup)
    assert best is not None
    err, tile, eff, cpe, setup = best
    per_input = 0.0
    if cls in INPUT_CLASSES:
        macs = np.array([padded_macs(c, tile) for c, _ in samples], dtype=float)
        work = np.array([padded_work(c, tile) for c, _ in samples], dtype=float)
        inputs = np.array([padded_inputs(c, tile) for c, _ in samples], dtype=float)
        fits = [(_grid_fit(macs, work, floor, net, clock, peak, fixed_us, inputs * v), float(v))
                for v in _PER_INPUT[1:]]  # fmt: skip
        fit, value = min(fits, key=lambda f: f[0][3])
        if fit[3] < err * 0.97:  # only when it explains the data clearly better, as a bigger tile must
            (eff, cpe, setup, err), per_input = fit, value
    return tile, eff, cpe, setup, err, per_input


def own_efficiencies(
    op_samples: dict[tuple[str, str], list[tuple[OpCost, float]]],
    mpc: dict[str, float],
    efficiency: dict[str, dict[str, float]],
    setup: dict[str, dict[str, float]],
    clock: float,
) -> dict[str, dict[str, float]]:
    """op -> dtype -> share of peak: what is left of each case's cycles after its class's setup, as MACs per
    cycle over the peak (median over the op's cases; the class's value when nothing is left, e.g. all
    overhead). The op's kernel is not the class's, so it does not borrow the class's per-output term either
    (fitted on FULLY_CONNECTED cases of 8-256 outputs, that term says nothing about a BATCH_MATMUL's 10,000)."""
    out: dict[str, dict[str, float]] = {}
    for (cls, dtype), pts in sorted(op_samples.items()):
        if cls not in efficiency or dtype not in efficiency[cls]:
            continue
        by_op: dict[str, list[float]] = {}
        for c, net in pts:
            left = net * clock - setup[cls][dtype]
            if left > 0 and c.macs:
                by_op.setdefault(table_op(c), []).append(c.macs / (mpc[dtype] * left))
        for op, vals in by_op.items():
            out.setdefault(op, {})[dtype] = round(float(np.median(vals)), 4)
    return out


MIN_GAIN = 0.01
"""The least drop of rms log error (about 1%) that makes a second term worth keeping."""


def own_per_output(
    op_samples: dict[tuple[str, str], list[tuple[OpCost, float]]],
    mpc: dict[str, float],
    setup: dict[str, dict[str, float]],
    clock: float,
    own_eff: dict[str, dict[str, float]],
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """(op -> dtype -> efficiency, op -> dtype -> cycles per output element) for ops with a kernel of their own
    whose time is better told by two terms, per MAC and per output, than by an efficiency alone: each case's
    cycles beyond the class's setup, least squares in relative error on (MACs, outputs), kept when both are
    positive and the rms log error falls below 0.97x the efficiency-only one and by more than MIN_GAIN (at least 3
    cases; two exact fits differ only by rounding, which CPUs do differently). Measured on a
    Xeon: int8 BATCH_MATMUL on TFLite's reference kernel takes 74, 89 and 138 us for 0.31-0.32 M MACs and 5,000,
    9,604 and 20,000 outputs (about 11 cycles an output: it requantises each output on its own)."""
    effs: dict[str, dict[str, float]] = {}
    per_out: dict[str, dict[str, float]] = {}
    for (cls, dtype), pts in sorted(op_samples.items()):
        by_op: dict[str, list[tuple[OpCost, float]]] = {}
        for c, net in pts:
            left = net * clock - setup.get(cls, {}).get(dtype, 0.0)
            if left > 0 and c.macs and c.work:
                by_op.setdefault(table_op(c), []).append((c, left))
        for op, vals in by_op.items():
            eff = own_eff.get(op, {}).get(dtype)
            if len(vals) < 3 or not eff or dtype not in mpc:
                continue
            macs = np.array([c.macs for c, _ in vals], dtype=float)
            work = np.array([c.work for c, _ in vals], dtype=float)
            cycles = np.array([v for _, v in vals])
            a = np.stack([macs / cycles, work / cycles], axis=1)
            (per_mac, per_output), *_ = np.linalg.lstsq(a, np.ones(len(vals)), rcond=None)
            if per_mac <= 0 or per_output <= 0:
                continue
            err_one = float(np.sqrt(np.mean(np.log(macs / (mpc[dtype] * eff) / cycles) ** 2)))
            err_two = float(np.sqrt(np.mean(np.log((macs * per_mac + work * per_output) / cycles) ** 2)))
            if err_two < 0.97 * err_one and err_one - err_two > MIN_GAIN:
                effs.setdefault(op, {})[dtype] = round(float(1.0 / (per_mac * mpc[dtype])), 5)
                per_out.setdefault(op, {})[dtype] = round(float(per_output), 3)
    return effs, per_out
