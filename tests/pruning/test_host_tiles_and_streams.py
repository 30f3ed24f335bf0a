"""Host tables version 3 and later: channel tiles up to 64 (x86 AMX int8 kernels), the per-element term on
tile-padded outputs, once-per-inference and per-op costs, GEMMs of few rows (weight streams:
test_host_weight_streams.py). Synthetic OpCosts and profiles: no model is built or timed."""

import dataclasses
import json
from pathlib import Path

import pytest

from contract import devices
from pruning.estimate.costs import OpCost, op_time_us, padded_inputs, padded_macs, padded_work, rows_slowdown
from pruning.estimate.fit import fit_class

MIB = 2**20


def _conv(pixels: int, cout: int, taps: int, cin: int) -> OpCost:
    macs, dims = pixels * cout * taps * cin, (pixels, cout, taps, cin)
    return OpCost(0, "CONV_2D", "conv", "int8", macs=macs, work=pixels * cout, act_bytes=pixels * (cin + cout),
                  weight_bytes=cout * taps * cin, dims=dims)  # fmt: skip


def test_padded_outputs_count_whole_register_tiles() -> None:
    c = _conv(256, 8, 9, 8)
    assert padded_work(c, (64, 64)) == 256 * 64
    assert padded_macs(c, (64, 64)) == 256 * 64 * 9 * 64
    assert padded_work(c, (1, 1)) == c.work
    flat = dataclasses.replace(c, cls="elementwise", op="ADD", macs=0)
    assert padded_work(flat, (64, 64)) == c.work  # only MAC classes have register tiles


def test_an_amx_like_kernel_is_fitted_with_64_channel_tiles() -> None:
    """Cost proportional to outputs padded to 64 channels and inputs padded to 64 per tap, as XNNPACK's qs8 AMX
    kernels (16 rows x 64 bytes): 16 and 32 channels cost the same. Tiles up to 32 (the candidates before
    version 3) cannot explain it; the fit finds (64, 64) and reproduces the times."""
    clock, peak = 1000.0, 400.0
    shapes = [(256, 8, 9, 8), (256, 32, 9, 32), (784, 16, 9, 16), (64, 64, 9, 64), (49, 256, 9, 256), (3136, 32, 9, 3),
              (1024, 16, 5, 3), (144, 24, 9, 12), (4096, 8, 1, 8)]  # fmt: skip
    samples = []
    for shape in shapes:
        c = _conv(*shape)
        cycles = padded_macs(c, (64, 64)) / (peak * 0.9) + padded_work(c, (64, 64)) * 0.5
        samples.append((c, cycles / clock))
    tile, eff, cpe, setup, err, _per_input = fit_class("conv", samples, clock, peak, bw_gbps=1000.0)
    assert tuple(tile) == (64, 64)
    assert err < 0.05
    assert eff == pytest.approx(0.9, rel=0.1)


def _profile(**changes: object) -> devices.DeviceProfile:
    return dataclasses.replace(devices.get_profile("cortex-a76-2400mhz"), **changes)  # type: ignore[arg-type]


def test_padded_outputs_apply_only_to_tables_fitted_that_way() -> None:
    c = _conv(256, 8, 9, 8)
    base = _profile(tiles={"conv": {"int8": [64, 64]}}, cycles_per_element={"conv": {"int8": 10.0}},
                    cycles_per_op={}, padded_outputs=False)  # fmt: skip
    padded = dataclasses.replace(base, padded_outputs=True)
    extra_us = (padded_work(c, (64, 64)) - c.work) * 10.0 / base.clock_mhz
    assert op_time_us(c, padded) - op_time_us(c, base) == pytest.approx(extra_us, rel=1e-6)


def test_what_an_inference_pays_once_per_class_comes_from_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chains of 1 and 9 small ops: the intercept beyond the invoke overhead is paid once per inference (0.3 us
    for int8 GEMMs on a Xeon), the slope is the ops' own cost; conv1x1 takes conv's value."""
    from pruning.estimate import microbench

    monkeypatch.setattr(microbench, "mac_chain_tflite", lambda cls, n, q: (cls, n, q))
    once = {("fully_connected", "int8"): 0.3, ("conv", "int8"): 0.25}

    def timer(model: tuple[str, int, str]) -> float:
        cls, n, q = model
        return 0.45 + once.get((cls, "int8" if q == "int8" else "float32"), 0.0) + 0.2 * n

    out = microbench.first_op_overheads(timer, 0.45, log=lambda _m: None)
    assert out["fully_connected"] == {"float32": 0.0, "int8": 0.3}
    assert out["conv1x1"] == out["conv"] == {"float32": 0.0, "int8": 0.25}
    assert out["depthwise"]["int8"] == 0.0


def test_a_slow_reading_of_a_first_op_chain_is_outvoted_by_the_other_rounds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The chains are timed in interleaved rounds and the lowest reading of each kept: a slow spell of the host
    during one reading of the one-op float conv chain (an idle EPYC read 6.63 us where 3.66 is usual) does not
    become a 3 us once-per-inference cost."""
    from pruning.estimate import microbench

    monkeypatch.setattr(microbench, "mac_chain_tflite", lambda cls, n, q: (cls, n, q))
    seen: list[tuple[str, int, str]] = []

    def timer(model: tuple[str, int, str]) -> float:
        seen.append(model)
        n = model[1]
        slow = 3.0 if model == ("conv", 1, "none") and seen.count(model) == 1 else 0.0
        return 0.45 + 0.2 * n + slow

    out = microbench.first_op_overheads(timer, 0.45, log=lambda _m: None)
    assert out["conv"]["float32"] == 0.0
    assert seen.count(("conv", 1, "none")) == microbench.FIRST_OP_ROUNDS == 3
    conv_readings = [i for i, m in enumerate(seen) if m == ("conv", 1, "none")]
    assert conv_readings[0] < seen.index(("depthwise", 1, "none")) < conv_readings[1]  # rounds interleave classes


def test_the_once_per_inference_cost_is_paid_once_the_largest_of_the_model() -> None:
    from pruning.estimate.costs import first_op_us

    p = _profile(first_op_us={"fully_connected": {"int8": 0.3}, "conv": {"int8": 0.25, "float32": 0.0}})
    fc = OpCost(1, "FULLY_CONNECTED", "fully_connected", "int8", macs=100, work=10)
    convs = [_conv(64, 16, 9, 16) for _ in range(5)]
    assert first_op_us(convs, p) == 0.25
    assert first_op_us([*convs, fc, fc], p) == 0.3
    assert first_op_us([dataclasses.replace(c, dtype="float32") for c in convs], p) == 0.0
    assert first_op_us(convs, _profile(first_op_us={})) == 0.0


def test_a_while_loop_costs_its_iterations(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loops of 1 and 33 iterations give the per-iteration cost (the body's three tiny ops taken off) and the
    once-per-loop cost; the estimate adds them for every loop of the graph."""
    from pruning.estimate import estimator, microbench
    from pruning.estimate.graph import Graph, Loop

    monkeypatch.setattr(microbench, "loop_tflite", lambda n: n)
    fixed, per_iteration = microbench.loop_overheads(lambda n: 0.45 + 1.5 + n * 0.3, 0.45, 0.02, lambda _m: None)
    assert (fixed, per_iteration) == (pytest.approx(1.5), pytest.approx(0.3 - 3 * 0.02))
    graph = Graph([], [], [], [], 0, b"", loops=[Loop(24, 24, 20), Loop(None, 1, 5)])
    p = _profile(loop_fixed_us=1.5, loop_iteration_us=0.25)
    assert estimator._loops_us(graph, p) == pytest.approx(2 * 1.5 + 25 * 0.25)


def test_a_cost_per_input_element_is_fitted_for_gemms() -> None:
    """A kernel that pays per element of its input operand (pixels x taps x input channels), which few output
    channels do not amortise: the fit finds the per-input term; without it in the data it stays at (about) 0."""
    clock, peak = 1000.0, 40.0
    shapes = [(3136, 32, 9, 32), (784, 64, 9, 64), (196, 128, 9, 128), (784, 16, 9, 16), (1024, 16, 9, 16),
              (576, 24, 9, 12), (256, 8, 9, 8), (1024, 12, 9, 48), (256, 32, 9, 32), (12544, 32, 9, 3)]  # fmt: skip
    convs = [dataclasses.replace(_conv(*shape), dtype="float32") for shape in shapes]
    for per_input, expected_zero in ((0.5, False), (0.0, True)):
        samples = [(c, (c.macs / (peak * 0.8) + c.work * 0.2 + padded_inputs(c, (16, 1)) * per_input) / clock)
                   for c in convs]  # fmt: skip
        tile, eff, _cpe, _setup, err, fitted = fit_class("conv", samples, clock, peak, bw_gbps=1000.0)
        assert err < 0.05
        assert (fitted <= 0.02) if expected_zero else fitted == pytest.approx(per_input, rel=0.35)


def test_the_per_input_term_applies_only_where_its_dtype_was_fitted() -> None:
    c = _conv(1024, 12, 9, 48)
    base = _profile(tiles={"conv": {"int8": [1, 1], "float32": [1, 1]}}, cycles_per_op={}, padded_outputs=False,
                    cycles_per_input={})  # fmt: skip
    with_float = dataclasses.replace(base, cycles_per_input={"conv": {"float32": 0.25}})
    assert op_time_us(c, with_float) == op_time_us(c, base)  # int8 op: no float32 fallback for this term
    f = dataclasses.replace(c, dtype="float32")
    extra = padded_inputs(f, (1, 1)) * 0.25 / base.clock_mhz
    assert op_time_us(f, with_float) - op_time_us(f, base) == pytest.approx(extra, rel=1e-6)


def test_an_op_with_its_own_kernel_does_not_borrow_the_class_per_output_term() -> None:
    """BATCH_MATMUL's efficiency (fit.own_efficiencies) covers its whole time beyond the class's setup on
    version-3 tables: FULLY_CONNECTED's per-output term, fitted on 8-256 outputs, is not applied to its 10,000."""
    from pruning.estimate.fit import own_efficiencies

    bmm = OpCost(0, "BATCH_MATMUL", "fully_connected", "float32", macs=4 * 49 * 49 * 32, work=4 * 49 * 49,
                 dims=(4 * 49, 49, 32))  # fmt: skip
    fc = {"fully_connected": {"float32": 0.3}}, {"fully_connected": {"float32": 500.0}}  # efficiency, setup
    own = own_efficiencies({("fully_connected", "float32"): [(bmm, 10.0)]}, {"float32": 30.0}, *fc, 1000.0)
    p = _profile(macs_per_cycle={"float32": 30.0}, clock_mhz=1000.0, op_efficiency=own, padded_outputs=True,
                 cycles_per_element={"fully_connected": {"float32": 3.0}},
                 cycles_per_op={"fully_connected": {"float32": 500.0}}, per_op_overhead_us=0.0)  # fmt: skip
    assert op_time_us(bmm, p) == pytest.approx(10.0, rel=1e-3)  # its micro-benchmark's time, back


def test_a_fully_connected_of_several_rows_is_costed_as_the_gemm_it_runs_on() -> None:
    """On XNNPACK a Dense on a sequence runs on a 1x1 convolution's GEMM kernels: conv1x1 tables; a batch-1 one
    keeps fully_connected's; TFLite Micro (CMSIS-NN loops over the rows) keeps fully_connected's for both."""
    from pruning.estimate.costs import as_run

    fc = OpCost(0, "FULLY_CONNECTED", "fully_connected", "int8", macs=64 * 128 * 256, work=64 * 128,
                act_bytes=64 * (256 + 128), weight_bytes=128 * 256, dims=(64, 128, 256))  # fmt: skip
    host = _profile(runtime_key="xnnpack-x86")
    assert as_run(fc, host).cls == "conv1x1"
    assert as_run(fc, host).dims == (64, 128, 1, 256)
    one = dataclasses.replace(fc, macs=128 * 256, work=128, dims=(1, 128, 256))
    assert as_run(one, host) is one
    assert as_run(fc, _profile(runtime_key="tflm-cmsis-nn")) is fc
    matmul = dataclasses.replace(fc, op="BATCH_MATMUL")
    assert as_run(matmul, host) is matmul  # its own kernel and efficiency
    efficiency = {"conv1x1": {"int8": 1.0}, "fully_connected": {"int8": 0.1}}
    tables = _profile(runtime_key="xnnpack-x86", efficiency=efficiency, cycles_per_element={}, cycles_per_op={},
                      cycles_per_input={}, op_efficiency={}, tiles={})  # fmt: skip
    assert op_time_us(fc, tables) < op_time_us(fc, dataclasses.replace(tables, runtime_key="tflm-cmsis-nn"))
    # XNNPACK's sparse path is for 1x1 CONV_2D only: a Dense on a sequence is not sped up by it
    assert op_time_us(fc, tables, sparse_factor=0.4) == op_time_us(fc, tables)


def test_a_1x1_convolution_of_one_pixel_is_costed_as_the_one_row_gemm_it_runs() -> None:
    """The converse on XNNPACK: a 1x1 CONV_2D with one output pixel (a squeeze-excite's) is a GEMM of one row and
    takes the fully_connected tables (an EPYC: 0.42-0.64 of its time on the conv tables, bench/host_weight_stream.py);
    two pixels, a 3x3 kernel and TFLite Micro keep the conv tables."""
    from pruning.estimate.costs import as_run

    one = OpCost(0, "CONV_2D", "conv1x1", "int8", macs=96 * 24, work=24, act_bytes=120, weight_bytes=96 * 24,
                 dims=(1, 24, 1, 96))  # fmt: skip
    host = _profile(runtime_key="xnnpack-x86")
    assert (as_run(one, host).cls, as_run(one, host).dims) == ("fully_connected", (1, 24, 96))
    two = dataclasses.replace(one, macs=2 * 96 * 24, work=48, dims=(2, 24, 1, 96))
    three_by_three = dataclasses.replace(one, cls="conv", macs=9 * 96 * 24, dims=(1, 24, 9, 96))
    assert as_run(two, host) is two
    assert as_run(three_by_three, host) is three_by_three
    assert as_run(one, _profile(runtime_key="tflm-cmsis-nn")).cls == "conv1x1"
    efficiency = {"conv1x1": {"int8": 1.0}, "fully_connected": {"int8": 0.1}}
    tables = _profile(runtime_key="xnnpack-x86", efficiency=efficiency, cycles_per_element={}, cycles_per_op={},
                      cycles_per_input={}, op_efficiency={}, tiles={}, gemm_rows={})  # fmt: skip
    assert op_time_us(one, tables) > op_time_us(one, dataclasses.replace(tables, runtime_key="tflm-cmsis-nn"))


def test_a_graph_of_hundreds_of_ops_costs_more_per_op_and_a_loop_body_counts_once() -> None:
    """Host tables v9: beyond a chain of 33 an op costs more than the per-op overhead; the extra is interpolated at
    the ops the file holds (extrapolated past the last point), paid by every op run, and a WHILE body's ops are
    held once however many trips run."""
    import keras

    from pruning.estimate.estimator import _graph_size_us, estimate
    from pruning.estimate.graph import parse
    from pruning.estimate.microbench import chain_tflite
    from pruning.export import _convert

    v9 = _profile(graph_op_overhead=((129, 1.0), (401, 5.0)))

    def extra(tflite: bytes) -> float:
        return _graph_size_us(parse(tflite), v9)[0]

    assert extra(chain_tflite(20, "none")) == 0.0
    held = len(parse(chain_tflite(81, "none")).ops)
    assert extra(chain_tflite(81, "none")) == pytest.approx(1.0 * (held - 33) / 96)
    held = len(parse(chain_tflite(265, "none")).ops)
    assert extra(chain_tflite(265, "none")) == pytest.approx(1.0 + 4.0 * (held - 129) / 272)
    held = len(parse(chain_tflite(541, "none")).ops)
    assert extra(chain_tflite(541, "none")) == pytest.approx(1.0 + 4.0 * (held - 129) / 272)
    assert "us beyond the per-op overhead" in estimate(chain_tflite(265, "none"), v9)["basis"]
    keras.utils.set_random_seed(0)
    loop = parse(_convert(keras.Sequential([keras.Input((300, 4)), keras.layers.GRU(4)]), "none", None))
    held = len(loop.ops) - sum(lp.body_ops * (lp.inlined - 1) for lp in loop.loops)
    assert (len(loop.ops) > 3000, held < 33) == (True, True)  # ~20 ops held, run 300 times
    assert _graph_size_us(loop, v9)[0] == 0.0
    several = parse(_convert(keras.Sequential([keras.Input((40, 4)), *[keras.layers.GRU(4, return_sequences=True)
                                                                       for _ in range(3)]]), "none", None))  # fmt: skip
    held = len(several.ops) - sum(lp.body_ops * (lp.inlined - 1) for lp in several.loops)
    assert 33 < held < 129  # three bodies held once each; every op run pays the held graph's rate
    assert _graph_size_us(several, v9)[0] == pytest.approx(1.0 * (held - 33) / 96 * len(several.ops) / held)


def test_a_gemm_of_few_rows_costs_more_per_mac_as_calibrated() -> None:
    """Host tables v10: a 1x1 convolution of 4 output pixels is 1.6x slower per MAC than the tables say (float),
    16 pixels 1.2x, 64 1.1x, 256 and more 1x; between the points it is interpolated in log rows; a
    FULLY_CONNECTED of several rows is the same GEMM, and so is a 3x3 convolution's; depthwise and transposed
    convolutions, hybrid and int16 ops and a profile without the table are untouched."""
    v10 = _profile(gemm_rows={"float32": ((4, 1.6), (16, 1.2), (64, 1.1)), "int8": ((4, 2.0), (16, 1.25), (64, 1.1))})
    v9 = dataclasses.replace(v10, gemm_rows={})

    def pointwise(pixels: int, dtype: str = "float32") -> OpCost:
        return dataclasses.replace(_conv(pixels, 512, 1, 512), cls="conv1x1", dtype=dtype)

    assert rows_slowdown(pointwise(4), v10, "float32") == pytest.approx(1.6)
    assert rows_slowdown(pointwise(1), v10, "float32") == pytest.approx(1.6)
    assert rows_slowdown(pointwise(16), v10, "int8") == pytest.approx(1.25)
    assert rows_slowdown(pointwise(32), v10, "float32") == pytest.approx(1.15)  # halfway from 16 to 64 in log rows
    assert rows_slowdown(pointwise(128), v10, "float32") == pytest.approx(1.05)
    assert rows_slowdown(pointwise(256), v10, "float32") == 1.0
    assert rows_slowdown(pointwise(3136), v10, "int8") == 1.0
    assert rows_slowdown(pointwise(4), v10, "float16") == pytest.approx(1.6)  # float16 weights run as float32
    assert rows_slowdown(pointwise(4), v10, "hybrid") == 1.0  # another kernel, not measured
    assert rows_slowdown(pointwise(4), v10, "int16") == 1.0
    assert rows_slowdown(pointwise(4), v9, "float32") == 1.0
    assert rows_slowdown(_conv(4, 512, 9, 512), v10, "int8") == pytest.approx(2.0)  # 3x3: the same GEMM kernels
    depthwise = dataclasses.replace(_conv(4, 512, 9, 1), cls="depthwise", op="DEPTHWISE_CONV_2D")
    assert rows_slowdown(depthwise, v10, "int8") == 1.0
    assert rows_slowdown(dataclasses.replace(_conv(4, 512, 9, 512), op="TRANSPOSE_CONV"), v10, "int8") == 1.0
    # in the op's time: only the MAC term grows (the setup and per-output terms do not)
    slow, fast = op_time_us(pointwise(4, "int8"), v10), op_time_us(pointwise(4, "int8"), v9)
    macs_us = op_time_us(pointwise(4, "int8"), dataclasses.replace(v9, per_op_overhead_us=0.0, cycles_per_op={},
                                                                   cycles_per_element={}))  # fmt: skip
    assert slow - fast == pytest.approx(macs_us * 1.0, rel=0.05)
    dense = OpCost(0, "FULLY_CONNECTED", "fully_connected", "float32", macs=4 * 256 * 512, work=4 * 256,
                   act_bytes=4 * (512 + 256) * 4, weight_bytes=256 * 512 * 4, dims=(4, 256, 512))  # fmt: skip
    runs_as = dataclasses.replace(v10, runtime_key="xnnpack-x86")
    assert op_time_us(dense, runs_as) > op_time_us(dense, dataclasses.replace(runs_as, gemm_rows={}))


def test_gemm_rows_are_read_from_a_profile_file_sorted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A host profile file's `gemm_rows` reach the estimator, sorted, rows of 0 dropped (no log of zero)."""
    raw = json.loads((Path(devices.__file__).parent / "profiles" / "host.json").read_text())
    raw["profile"]["gemm_rows"] = {"int8": [[16, 1.25], [0, 9.0], [4, 2.0]]}
    path = tmp_path / "host.json"
    path.write_text(json.dumps(raw))
    monkeypatch.setenv("SHEARS_HOST_PROFILE", str(path))
    devices.clear_cache()
    try:
        host = devices.get_profile("host")
        assert host.gemm_rows == {"int8": ((4, 2.0), (16, 1.25))}
        assert rows_slowdown(_conv(4, 64, 1, 64), host, "int8") == pytest.approx(2.0)
    finally:
        monkeypatch.undo()
        devices.clear_cache()
