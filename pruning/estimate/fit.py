"""The fits of host calibration (`pruning.estimate.calibrate`): per class and dtype, the efficiency, cycles
per element, setup cycles and channel tile that best reproduce the single-op micro-benchmarks in the
estimator's own form (`pruning.estimate.costs.op_time_us`); per op with a kernel of its own, its efficiency."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from pruning.estimate.costs import OpCost, padded_macs, padded_work, table_op

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
        comp = macs / (peak * eff)
        cyc = comp[None, None, :] + cpes[:, None, None] * work[None, None, :] + setups[None, :, None]
        pred = np.maximum(cyc / clock, floor_us[None, None, :])
        err = np.sqrt(np.mean(np.log((pred + fixed_us) / (net_us + fixed_us)) ** 2, axis=2))
        i, j = np.unravel_index(int(np.argmin(err)), err.shape)
        if err[i, j] < best[0]:
            best = (float(err[i, j]), float(eff), float(cpes[i]), float(setups[j]))
    return best[1], best[2], best[3], best[0]


def fit_class(
    cls: str, samples: list[tuple[OpCost, float]], clock: float, peak: float, bw_gbps: float, fixed_us: float = 0.0
) -> tuple[tuple[int, int], float, float, float, float]:
    """Channel tile, efficiency, cycles per element, setup cycles and RMS log error for one class and dtype.
    The per-element term of a MAC class counts tile-padded outputs (`costs.padded_work`), as the kernels
    requantise and store whole register tiles."""
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
    return best[1], best[2], best[3], best[4], best[0]


def own_efficiencies(
    op_samples: dict[tuple[str, str], list[tuple[OpCost, float]]],
    mpc: dict[str, float],
    efficiency: dict[str, dict[str, float]],
    cpe: dict[str, dict[str, float]],
    setup: dict[str, dict[str, float]],
    clock: float,
) -> dict[str, dict[str, float]]:
    """op -> dtype -> share of peak: what is left of each case's cycles after its class's setup and
    per-output terms, as MACs per cycle over the peak (median over the op's cases; the class's value
    when nothing is left, e.g. all overhead)."""
    out: dict[str, dict[str, float]] = {}
    for (cls, dtype), pts in sorted(op_samples.items()):
        if cls not in efficiency or dtype not in efficiency[cls]:
            continue
        by_op: dict[str, list[float]] = {}
        for c, net in pts:
            left = net * clock - setup[cls][dtype] - c.work * cpe[cls][dtype]
            if left > 0 and c.macs:
                by_op.setdefault(table_op(c), []).append(c.macs / (mpc[dtype] * left))
        for op, vals in by_op.items():
            out.setdefault(op, {})[dtype] = round(float(np.median(vals)), 4)
    return out
