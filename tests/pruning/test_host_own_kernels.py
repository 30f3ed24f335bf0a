"""Host tables version 4: an op with a kernel of its own (int8 BATCH_MATMUL on TFLite's reference kernel) gets a
per-output term next to its efficiency when two terms tell its micro-benchmarks clearly better
(`fit.own_per_output`); tables without the term (version 3, the committed fallback) cost it as before.
Synthetic OpCosts and timings: no model is built or timed."""

import dataclasses

import pytest

from contract import devices, host_tables
from pruning.estimate.costs import OpCost, op_time_us
from pruning.estimate.fit import own_efficiencies, own_per_output

CLOCK, PEAK, SETUP = 1000.0, 300.0, 200.0
REF = "BATCH_MATMUL/reference"


def _bmm(batch: int, m: int, k: int, n: int) -> OpCost:
    out = batch * m * n
    return OpCost(0, "BATCH_MATMUL", "fully_connected", "int8", macs=out * k, work=out, dims=(batch * m, n, k),
                  reference=True)  # fmt: skip


# shapes unlike any model's: near-equal MACs, outputs from 5,000 to 20,000 (as the calibration's cases)
SHAPES = [(4, 49, 32, 49), (2, 100, 16, 100), (8, 25, 64, 25), (6, 40, 24, 40)]


def _samples(per_mac: float, per_output: float) -> dict[tuple[str, str], list[tuple[OpCost, float]]]:
    """Net microseconds of each case: setup + MACs x per_mac + outputs x per_output cycles."""
    pts = []
    for shape in SHAPES:
        c = _bmm(*shape)
        pts.append((c, (SETUP + c.macs * per_mac + c.work * per_output) / CLOCK))
    return {("fully_connected", "int8"): pts}


def _fit(samples: dict[tuple[str, str], list[tuple[OpCost, float]]]) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    setup = {"fully_connected": {"int8": SETUP}}
    own = own_efficiencies(samples, {"int8": PEAK}, {"fully_connected": {"int8": 0.5}}, setup, CLOCK)
    effs, per_out = own_per_output(samples, {"int8": PEAK}, setup, CLOCK, own)
    return own, effs, per_out


def _host(**changes: object) -> devices.DeviceProfile:
    base = devices.get_profile("cortex-a76-2400mhz")
    return dataclasses.replace(base, macs_per_cycle={"int8": PEAK}, clock_mhz=CLOCK, padded_outputs=True,  # type: ignore[arg-type]
                               cycles_per_op={"fully_connected": {"int8": SETUP}}, per_op_overhead_us=0.0,
                               **changes)  # fmt: skip


def test_a_kernel_that_pays_per_output_gets_a_per_output_term() -> None:
    """Reference-kernel-like timings (0.4 cycles a MAC, 11 an output): the efficiency alone misses the
    20,000-output case by about a third; the two terms are recovered and give every case's time back."""
    samples = _samples(0.4, 11.0)
    own, effs, per_out = _fit(samples)
    assert per_out[REF]["int8"] == pytest.approx(11.0, rel=0.01)
    assert effs[REF]["int8"] == pytest.approx(1 / (0.4 * PEAK), rel=0.01)
    one = _host(op_efficiency=own)
    two = _host(op_efficiency={REF: effs[REF]}, op_cycles_per_output=per_out)
    for c, net in samples[("fully_connected", "int8")]:
        assert op_time_us(c, two) == pytest.approx(net, rel=0.01)
    worst_one = max(abs(op_time_us(c, one) / net - 1) for c, net in samples[("fully_connected", "int8")])
    assert worst_one > 0.2


def test_time_in_proportion_to_macs_keeps_the_efficiency_alone() -> None:
    own, effs, per_out = _fit(_samples(0.4, 0.0))
    assert effs == {}
    assert per_out == {}
    assert own[REF]["int8"] == pytest.approx(1 / (0.4 * PEAK), rel=0.01)


def test_two_cases_do_not_make_a_two_term_fit() -> None:
    samples = _samples(0.4, 11.0)
    samples[("fully_connected", "int8")] = samples[("fully_connected", "int8")][:2]
    assert _fit(samples)[1:] == ({}, {})


def test_tables_without_the_term_cost_as_before() -> None:
    """Version-3 tables and the committed fallback have no `op_cycles_per_output`: the op costs what its
    efficiency says, as before version 4; the term is read for the op's own table key only."""
    c = _bmm(*SHAPES[1])
    own = {REF: {"int8": 0.01}}
    before = _host(op_efficiency=own)
    assert before.op_cycles_per_output == {}
    assert op_time_us(c, before) == pytest.approx((SETUP + c.macs / (PEAK * 0.01)) / CLOCK, rel=1e-6)
    other_key = _host(op_efficiency=own, op_cycles_per_output={"BATCH_MATMUL": {"int8": 11.0}})
    assert op_time_us(c, other_key) == op_time_us(c, before)
    with_term = _host(op_efficiency=own, op_cycles_per_output={REF: {"int8": 11.0}})
    assert op_time_us(c, with_term) - op_time_us(c, before) == pytest.approx(c.work * 11.0 / CLOCK, rel=1e-6)
    assert "op_cycles_per_output" not in host_tables.fallback()["runtime"]
    assert host_tables.TABLES_VERSION >= 4  # cached version-3 tables are calibrated again
