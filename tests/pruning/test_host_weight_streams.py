"""Weights re-read each inference from where they live (host tables v3+): the one-row sweep, the several-row sweeps
by dtype (v8, v11), how a profile file carries them, and the calibration's readings of them."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from contract import devices
from pruning.estimate.memory import stream_rate_gbps, streamed_weights_us
from tests.pruning.test_host_tiles_and_streams import MIB, _conv, _profile

SWEEP = ((MIB // 4, 90.0), (MIB, 100.0), (2 * MIB, 60.0), (4 * MIB, 30.0), (128 * MIB, 10.0))


def test_the_weight_stream_rate_follows_the_sweep() -> None:
    assert stream_rate_gbps(SWEEP, 0) == 100.0  # the overhead-bound smallest point is raised to the best after it
    assert stream_rate_gbps(SWEEP, MIB // 4) == 100.0
    assert stream_rate_gbps(SWEEP, 4 * MIB) == 30.0
    assert stream_rate_gbps(SWEEP, 1024 * MIB) == 10.0  # beyond the sweep: its last rate (DRAM)
    mid = stream_rate_gbps(SWEEP, 3 * MIB)
    assert 30.0 < mid < 60.0


def test_weights_beyond_the_private_cache_are_re_read_each_inference() -> None:
    """Additive, per byte: packed * (1/rate(working set) - 1/hot rate); nothing while the model fits the core's
    own cache; without a sweep, the old spill beyond llc_bytes at DRAM rate."""
    p = _profile(weight_stream=SWEEP, llc_bytes=0)
    assert streamed_weights_us(MIB // 2, MIB, p) == (0.0, "")
    us, note = streamed_weights_us(8 * MIB, 8 * MIB + MIB // 2, p)
    rate = stream_rate_gbps(SWEEP, 8 * MIB + MIB // 2)
    assert us == pytest.approx(8 * MIB / (rate * 1e3) - 8 * MIB / (100.0 * 1e3))
    assert "re-read each inference" in note
    old = _profile(weight_stream=(), llc_bytes=4 * MIB, mem_bandwidth_gbps=10.0)
    assert streamed_weights_us(8 * MIB, 6 * MIB, old)[0] == pytest.approx(2 * MIB / 1e4)


ROWS_SWEEP = ((MIB // 2, 50.0), (8 * MIB, 25.0), (128 * MIB, 8.0))
INT8_ROWS_SWEEP = ((MIB // 2, 40.0), (8 * MIB, 40.0), (32 * MIB, 10.0))


def test_weights_of_several_row_ops_stream_at_their_own_dtypes_sweep() -> None:
    """Tables v8+: the bytes read by ops of more than one output row (a conv's pixels) stream at the several-row
    GEMM sweep's rate, by dtype since v11 (int8 at the int8 sweep's, float32's where a dtype has none), the
    one-row ops' bytes (a batch-1 FULLY_CONNECTED, a conv at 1x1 pixels) at the one-row sweep's; tables without
    the second sweep read every byte at the first (version 7)."""
    from pruning.estimate.memory import packed_split

    one = dataclasses.replace(_conv(1, 512, 9, 512), weight_elements=512 * 9 * 512)
    four = dataclasses.replace(_conv(4, 512, 9, 512), weight_elements=512 * 9 * 512)
    float_four = dataclasses.replace(four, dtype="float32")
    hybrid_four = dataclasses.replace(four, dtype="hybrid")  # int8 weights, float activations: int8's bytes
    assert packed_split([one, four, float_four, hybrid_four]) == (7 * 512 * 9 * 512, {
        "int8": 2 * 512 * 9 * 512, "float32": 4 * 512 * 9 * 512})  # fmt: skip  # int8: a byte a weight
    v11 = _profile(weight_stream=SWEEP, weight_stream_rows={"float32": ROWS_SWEEP, "int8": INT8_ROWS_SWEEP},
                   llc_bytes=0)  # fmt: skip
    v8 = dataclasses.replace(v11, weight_stream_rows={"float32": ROWS_SWEEP})
    v7 = dataclasses.replace(v8, weight_stream_rows={})
    packed, working = 96 * MIB, 97 * MIB
    half = packed // 2
    both, note = streamed_weights_us(packed, working, v8, rows={"float32": half})
    one_row = half / (stream_rate_gbps(SWEEP, working) * 1e3) - half / (100.0 * 1e3)
    rows = half / (stream_rate_gbps(ROWS_SWEEP, working) * 1e3) - half / (50.0 * 1e3)
    assert both == pytest.approx(one_row + rows)
    assert "several rows" in note
    int8 = half / (stream_rate_gbps(INT8_ROWS_SWEEP, working) * 1e3) - half / (40.0 * 1e3)
    assert streamed_weights_us(packed, working, v11, rows={"int8": half})[0] == pytest.approx(one_row + int8)
    assert streamed_weights_us(packed, working, v8, rows={"int8": half})[0] == pytest.approx(both)  # float32's
    int8_only = dataclasses.replace(v11, weight_stream_rows={"int8": INT8_ROWS_SWEEP})  # no float32 sweep:
    assert streamed_weights_us(packed, working, int8_only, rows={"float32": half})[0] == pytest.approx(
        streamed_weights_us(packed, working, v7)[0]  # float32 bytes at the one-row sweep, not at int8's
    )
    assert streamed_weights_us(packed, working, v7, rows={"float32": half})[0] == pytest.approx(
        streamed_weights_us(packed, working, v7)[0]
    )
    assert (streamed_weights_us(packed, working, v8, rows={"float32": packed})[0]
            > streamed_weights_us(packed, working, v7)[0])  # fmt: skip


@pytest.mark.parametrize(
    ("written", "read"),
    [
        (
            {"float32": [[524288, 11.0]], "int8": [[524288, 9.0]]},
            {"float32": ((524288, 11.0),), "int8": ((524288, 9.0),)},
        ),
        ([[524288, 31.0]], {"float32": ((524288, 31.0),)}),  # tables v8-v10: one float32 sweep
        ([], {}),
        ({}, {}),
        ({"int8": []}, {}),
    ],
)
def test_several_row_sweeps_are_read_from_a_profile_file_by_dtype(
    written: object, read: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host profile file's `weight_stream_rows` reach the estimator by dtype, in the v11 form or the older one."""
    raw = json.loads((Path(devices.__file__).parent / "profiles" / "host.json").read_text())
    raw["profile"]["weight_stream_rows"] = written
    path = tmp_path / "host.json"
    path.write_text(json.dumps(raw))
    monkeypatch.setenv("SHEARS_HOST_PROFILE", str(path))
    devices.clear_cache()
    try:
        assert devices.get_profile("host").weight_stream_rows == read
    finally:
        monkeypatch.undo()
        devices.clear_cache()


def test_a_slow_reading_of_a_weight_stream_chain_is_outvoted_by_the_next_round(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each 16-row chain is timed in interleaved rounds and its lowest reading kept: one calibration of an EPYC read
    the float 8 MiB chain at 7.6 GB/s where the others read ~11, a stream charge no float model pays."""
    from pruning.estimate import runtime_bench

    def chain(channels: int, pixels: int = 2, ops: int = 8, quantization: str = "none") -> tuple[int, str]:
        return channels, quantization

    monkeypatch.setattr(runtime_bench, "conv_chain_tflite", chain)
    seen: list[tuple[int, str]] = []

    def timed(model: tuple[int, str]) -> float:
        seen.append(model)
        channels, quantization = model
        size = 8 * channels * channels * (1 if quantization == "int8" else 4)
        slow = 1.5 if model == (512, "none") and seen.count(model) == 1 else 1.0
        return slow * size / 11e3  # 11 GB/s

    sweeps = runtime_bench.rows_weight_sweep(timed, log=lambda _m: None)
    assert [rate for _, rate in sweeps["float32"]] == pytest.approx([11.0] * 5)
    assert seen.count((512, "none")) == runtime_bench.ROWS_SWEEP_ROUNDS == 2
    first = [i for i, m in enumerate(seen) if m == (512, "none")]
    assert first[0] < seen.index((2048, "int8")) < first[1]  # the rounds interleave the chains
