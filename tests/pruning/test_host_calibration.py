"""Host calibration per CPU fingerprint: robust to useless timers, cached per fingerprint, named in `basis`.

The micro-benchmark models are built once (memoised) and two tiny cases stand in for the full list, so
these tests never spend minutes calibrating."""

import functools
import json
from pathlib import Path
from typing import Any

import keras
import pytest

from contract import devices, host_tables
from pruning.estimate import __main__ as estimate_cli
from pruning.estimate import calibrate, estimate
from pruning.estimate.calibrate import CalibrationError, calibrate_host

L = keras.layers


CASES = [
    ("fully_connected", "fc 64->10", [(64,)], lambda xs: L.Dense(10)(xs[0])),
    ("elementwise", "add 8x8x8", [(8, 8, 8)] * 2, lambda xs: L.Add()(xs)),
]
_BUILD = {c[1]: c[3] for c in CASES}
_DESC = {id(c[3]): c[1] for c in CASES}
_ORIGINAL_SINGLE = calibrate.single_op_tflite


@functools.cache
def _single(shapes: tuple[tuple[int, ...], ...], desc: str, q: str) -> bytes:
    return _ORIGINAL_SINGLE(list(shapes), _BUILD[desc], q)


_chain = functools.lru_cache(maxsize=None)(calibrate.chain_tflite)


def _cases() -> list[Any]:
    return list(CASES)


@pytest.fixture
def fast_builders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model built once per test session (the bandwidth sweep's Dense layers included)."""
    monkeypatch.setattr(calibrate, "chain_tflite", _chain)
    sweep: dict[tuple[Any, ...], bytes] = _SWEEP

    def single(shapes: list[tuple[int, ...]], build: Any, q: str) -> bytes:
        desc = _DESC.get(id(build))
        if desc is not None:
            return _single(tuple(shapes), desc, q)
        key = (tuple(shapes), q, build.__defaults__)
        if key not in sweep:
            sweep[key] = _ORIGINAL_SINGLE(shapes, build, q)
        return sweep[key]

    monkeypatch.setattr(calibrate, "single_op_tflite", single)


_SWEEP: dict[tuple[Any, ...], bytes] = {}


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SHEARS_HOST_PROFILES_DIR", str(tmp_path))
    monkeypatch.delenv("SHEARS_HOST_PROFILE", raising=False)
    devices.clear_cache()
    yield tmp_path
    devices.clear_cache()


def test_a_timer_that_returns_zero_fails_with_a_reason(fast_builders: None) -> None:
    with pytest.raises(CalibrationError, match="resolution"):
        calibrate_host(log=lambda _m: None, timer=lambda _t, _b: 0.0, quick=True, budget_s=30.0, cases=_cases())


def test_a_spent_budget_fails_with_a_reason_not_a_traceback(fast_builders: None) -> None:
    with pytest.raises(CalibrationError, match="no micro-benchmark"):
        calibrate_host(log=lambda _m: None, timer=lambda _t, _b: 5.0, quick=True, budget_s=0.0, cases=_cases())


def test_the_cli_prints_the_reason_and_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: Any, cache: Path) -> None:
    def broken(**_: Any) -> dict[str, Any]:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(estimate_cli, "calibrate_host", broken)
    assert estimate_cli.main(["calibrate-host", "--quick"]) == 2
    assert "calibration failed: ZeroDivisionError" in capsys.readouterr().err
    assert not list(cache.iterdir())


def test_calibrated_tables_are_cached_per_fingerprint_and_named_in_basis(fast_builders: None, cache: Path) -> None:
    here = host_tables.fingerprint()
    # cache miss: the committed fallback, and the basis says it is another CPU's
    assert host_tables.needs_calibration()
    model = _single(((64,),), "fc 64->10", "int8")
    miss = estimate(model, devices.get_profile("host"))["basis"]
    assert "ANOTHER CPU" in miss
    assert "amd-epyc-2c-unrecorded" in miss
    assert here["id"] in miss

    data = calibrate_host(log=lambda _m: None, timer=lambda t, _b: 2.0 + len(t) / 1000, quick=True, budget_s=30.0,
                          cases=_cases())  # fmt: skip
    assert data["machine"]["fingerprint"]["id"] == here["id"]
    assert data["calibration"]["filled_from_fallback"]  # two cases cannot cover every class: the rest fall back
    assert set(devices.MAC_CLASSES) <= set(data["runtime"]["efficiency"])
    path = host_tables.store(data)
    assert path == cache / f"host-{here['id']}.json"
    devices.clear_cache()
    # cache hit: this CPU's tables
    assert not host_tables.needs_calibration()
    hit = estimate(model, devices.get_profile("host"))["basis"]
    assert f"host tables calibrated on this CPU, fingerprint {here['id']}" in hit
    assert "ANOTHER" not in hit
    # tables of another fingerprint in the cache folder are not taken for this CPU
    other = dict(data, machine=dict(data["machine"], fingerprint=dict(here, id="other-cpu-4c-0000000000")))
    path.unlink()
    host_tables.store(other)
    devices.clear_cache()
    assert host_tables.needs_calibration()
    # ...unless handed over explicitly (SHEARS_HOST_PROFILE), and then the basis still says whose they are
    forced = cache / "forced.json"
    forced.write_text(json.dumps(other))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHEARS_HOST_PROFILE", str(forced))
        devices.clear_cache()
        note = devices.get_profile("host").tables_basis
    assert "ANOTHER CPU" in note
    assert "other-cpu-4c-0000000000" in note
    # ...and tables handed over that cannot be read are named as such, not passed over in silence
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SHEARS_HOST_PROFILE", str(cache / "missing.json"))
        devices.clear_cache()
        note = devices.get_profile("host").tables_basis
    assert f"SHEARS_HOST_PROFILE names {cache / 'missing.json'}, which could not be read here" in note
    # ...nor are tables read through a link (a root worker copies them into each job's folder)
    (cache / "link.json").symlink_to(forced)
    assert host_tables.read(cache / "link.json") is None
    assert host_tables.read(forced) == other


def test_fingerprint_on_aarch64(monkeypatch: pytest.MonkeyPatch) -> None:
    info = {"CPU implementer": "0x41", "CPU part": "0xd0b", "Features": "fp asimd evtstrm aes"}
    monkeypatch.setattr(host_tables, "_cpuinfo", lambda: info)
    monkeypatch.setattr(host_tables.platform, "machine", lambda: "aarch64")
    fp = host_tables.fingerprint.__wrapped__()
    assert fp["arch"] == "aarch64"
    assert "0xd0b" in fp["model"]
    assert fp["flags_sha256"] != "none"
    info["Features"] += " sve"
    assert host_tables.fingerprint.__wrapped__()["id"] != fp["id"]


def test_shears_profile_calibrates_a_fresh_cpu_once(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from pruning.estimate import host_setup

    calls: list[float] = []

    def fake(log: Any, budget_s: float) -> dict[str, Any]:
        calls.append(budget_s)
        data = host_tables.fallback()
        data["machine"] = dict(data["machine"], fingerprint=host_tables.fingerprint())
        return data | {"tables_version": host_tables.TABLES_VERSION}

    monkeypatch.setattr(host_setup, "calibrate_host", fake)
    monkeypatch.setenv("SHEARS_HOST_CALIBRATION", "off")
    assert host_setup.ensure_host_tables(log=lambda _m: None) == "off"
    monkeypatch.setenv("SHEARS_HOST_CALIBRATION", "background")
    assert host_setup.ensure_host_tables(log=lambda _m: None) == "calibrated"
    assert host_setup.ensure_host_tables(log=lambda _m: None) == "cached"
    assert len(calls) == 1
    assert "calibrated on this CPU" in devices.get_profile("host").tables_basis
    # tables cached by an older calibration (fewer micro-benchmarks, fewer tables) are made again
    cached = host_tables.cached_path()
    cached.write_text(json.dumps(json.loads(cached.read_text()) | {"tables_version": 1}))
    assert host_setup.ensure_host_tables(log=lambda _m: None) == "calibrated"
    assert len(calls) == 2


def test_a_failed_calibration_keeps_the_fallback(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    from pruning.estimate import host_setup

    def broken(log: Any, budget_s: float) -> dict[str, Any]:
        raise CalibrationError("no usable timings")

    monkeypatch.setattr(host_setup, "calibrate_host", broken)
    monkeypatch.setenv("SHEARS_HOST_CALIBRATION", "background")
    said: list[str] = []
    assert host_setup.ensure_host_tables(log=said.append) == "failed"
    assert "no usable timings" in said[-1]
    assert "ANOTHER CPU" in devices.get_profile("host").tables_basis


def test_the_peak_rate_ignores_cases_timed_near_the_overheads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tiny conv whose time is all invoke and per-op overhead has a net time of ~0 and so an absurd
    MACs/cycle rate; the peak comes from the conv timed well above the overheads (10 MACs/cycle here)."""
    from pruning.estimate.costs import analyse
    from pruning.estimate.graph import parse

    monkeypatch.setattr(calibrate, "_host_clock_mhz", lambda: 1000.0)
    cases = [
        ("conv", "conv 3x3 4x4x8->8", [(4, 4, 8)], lambda xs: L.Conv2D(8, 3, padding="same")(xs[0])),
        ("conv1x1", "conv1x1 28x28x32->32", [(28, 28, 32)], lambda xs: L.Conv2D(32, 1)(xs[0])),
    ]

    def timer(tflite: bytes, _budget: float) -> float:
        macs = sum(c.macs for c in analyse(parse(tflite)))
        if macs < 100_000:  # the chains of ADDs, and the tiny conv: overhead only
            return 3.0 + len(tflite) / 1e6
        return 3.0 + macs / (1000.0 * 10.0)

    data = calibrate_host(log=lambda _m: None, timer=timer, quick=True, budget_s=60.0, cases=cases)
    assert data["profile"]["macs_per_cycle"]["float32"] == pytest.approx(10.0, rel=0.05)


def test_an_int8_batch_matmul_is_costed_by_the_kernel_that_runs_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """XNNPACK takes an int8 BATCH_MATMUL only with a right-hand zero point of 0; the reference kernel runs
    the others. Calibration fits each its own efficiency (apart from FULLY_CONNECTED's class fit), and the
    estimator reads the zero point from the file to pick the one that applies."""
    from pruning.estimate.costs import analyse, op_time_us, table_op
    from pruning.estimate.graph import parse
    from pruning.estimate.microbench import with_ranges

    monkeypatch.setattr(calibrate, "_host_clock_mhz", lambda: 1000.0)
    matmul = [
        ("fully_connected", f"batch_matmul {rhs}", [(4, 24, 16), (4, 16, 24)],
         with_ranges(lambda xs: keras.ops.matmul(xs[0], xs[1]), [(-1.0, 1.0), span]))
        for rhs, span in (("symmetric", (-128 / 127, 1.0)), ("asymmetric", (-0.25, 1.0)))
    ]  # fmt: skip
    cases = [("fully_connected", "fc 256->128", [(256,)], lambda xs: L.Dense(128)(xs[0])), *matmul]
    files = {desc: calibrate.single_op_tflite(shapes, build, "int8") for _, desc, shapes, build in matmul}
    kinds = {desc: table_op(analyse(parse(f))[0]) for desc, f in files.items()}
    assert kinds == {"batch_matmul symmetric": "BATCH_MATMUL", "batch_matmul asymmetric": "BATCH_MATMUL/reference"}

    def timer(tflite: bytes, _budget: float) -> float:  # the reference kernel 10x slower per MAC
        costs = [c for c in analyse(parse(tflite)) if c.macs]
        return 3.0 + sum(c.macs / (1000.0 * (1.0 if c.reference else 10.0)) for c in costs)

    data = calibrate_host(log=lambda _m: None, timer=timer, quick=True, budget_s=120.0, cases=cases)
    own = data["runtime"]["op_efficiency"]
    assert own["BATCH_MATMUL/reference"]["int8"] < own["BATCH_MATMUL"]["int8"] / 5
    profile = devices._build("host", data["profile"], {"xnnpack-x86": data["runtime"]})  # these tables alone
    times = {desc: op_time_us(analyse(parse(f))[0], profile) for desc, f in files.items()}
    assert times["batch_matmul asymmetric"] > 5 * times["batch_matmul symmetric"]


def test_a_small_ops_marginal_time_in_a_chain_joins_its_class_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """A one-op model hides a small op under its invoke overhead; the chains of 1 and 9 small ops that measure
    the once-per-inference cost also give what one more such op costs, (t9 - t1) / 8, with the op's OpCost."""
    from pruning.estimate import microbench
    from pruning.estimate.costs import analyse
    from pruning.estimate.graph import parse

    monkeypatch.setattr(
        microbench, "FIRST_OP_CHAINS", {"fully_connected": microbench.FIRST_OP_CHAINS["fully_connected"]}
    )

    def timed(tflite: bytes) -> float:  # 1.0 us for a chain of one op, 2.6 us for nine
        ops = sum(c.op == "FULLY_CONNECTED" for c in analyse(parse(tflite)))
        return {1: 1.0, 9: 2.6}[ops]

    marginal: dict[tuple[str, str], list[Any]] = {}
    first = microbench.first_op_overheads(timed, 0.5, log=lambda _m: None, marginal=marginal)
    assert set(marginal) == {("fully_connected", "float32"), ("fully_connected", "int8")}
    for (_cls, dtype), [(cost, us)] in marginal.items():
        assert (cost.op, cost.macs, cost.dtype) == ("FULLY_CONNECTED", 48 * 48, dtype)
        assert us == pytest.approx(0.2)
    assert first["fully_connected"]["int8"] == pytest.approx(1.0 - 0.2 - 0.5)


def test_the_per_op_overhead_is_the_median_of_repeated_readings() -> None:
    """One pass of the ADD chains taken in a passing state of the host (an idle AVX-512 EPYC read 0.022 us an op
    once, then 0.058 in every later reading) does not become the tables' overhead: the median of the repeats."""
    from pruning.estimate import microbench

    calls: list[tuple[int, str]] = []

    def timed(model: tuple[int, str]) -> float:
        calls.append(model)
        n, _q = model
        per_op = 0.022 if len(calls) <= 4 else 0.058  # the first pass (float32 and int8) reads fast
        return 0.42 + n * per_op

    per_op, invoke, readings = microbench.op_overheads(timed, lambda n, q: (n, q), repeats=3, log=lambda _m: None)
    assert len(readings) == 6
    assert min(readings) == pytest.approx(0.022)
    assert per_op == pytest.approx(0.058)
    assert invoke == pytest.approx(0.42)
    assert {q for _n, q in calls} == {"none", "int8"}
