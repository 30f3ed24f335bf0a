"""bench/published_mcu.csv: the MCU fit sees only the rows named before fitting; every row is cited."""

import csv
import importlib.util
import re
from pathlib import Path

ROWS = Path(__file__).resolve().parents[1] / "bench" / "published_mcu.csv"


def _rows() -> list[dict[str, str]]:
    with ROWS.open() as fh:
        return list(csv.DictReader(fh))


def test_only_the_four_krai_m4f_rows_are_fitted() -> None:
    fitted = [r for r in _rows() if r["use"] == "fitted"]
    assert len(fitted) == 4
    assert {(r["round"], r["submitter"], r["board"], r["core"]) for r in fitted} == {
        ("v1.1", "Krai", "NUCLEO-L4R5ZI", "cortex-m4f")
    }


def test_every_row_is_cited_and_has_a_known_use_and_kernel_api() -> None:
    rows = _rows()
    assert rows
    for r in rows:
        assert r["use"] in {"fitted", "checked", "not-estimated", "context"}, r
        assert r["kernels"] in {"s8", "q7-legacy", "own"}, r
        if r["round"].startswith("v"):  # an MLPerf Tiny round: the system's results.txt
            assert r["url"].startswith(f"https://github.com/mlcommons/tiny_results_{r['round']}/"), r
            assert r["url"].endswith("/performance/results.txt"), r
        else:  # another published table: a file at a pinned commit, checked only
            assert re.match(r"https://github\.com/[^/]+/[^/]+/blob/[0-9a-f]{40}/", r["url"]), r
            assert r["use"] == "checked", r
        assert float(r["inferences_per_s"]) > 0, r
        assert float(r["clock_mhz"]) > 0, r
    # rows the estimator checks are on a core with a profile; the others are never estimated
    assert {r["core"] for r in rows if r["use"] in {"fitted", "checked"}} <= {"cortex-m4f", "cortex-m33", "cortex-m7"}


def _specs() -> dict[str, tuple[int, int, list[tuple[int, int, int, int]], int, int]]:
    path = ROWS.parent / "mcunet_models.py"
    spec = importlib.util.spec_from_file_location("mcunet_models", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # keras is imported only when a model is built
    return module.SPECS  # type: ignore[no-any-return]


def test_the_rebuilt_mcunet_zoo_models_have_the_zoos_macs() -> None:
    # MACs of mit-han-lab/mcunet's model list (README, "Model List"), in millions, to its one decimal
    published = {"mcunet-in0": 6.4, "mcunet-in1": 12.8, "mcunet-in2": 67.3, "mcunet-in3": 81.8,
                 "proxyless-w0.3-r176": 38.3, "mcunet-vww1": 11.6, "mcunet-vww2": 55.8}  # fmt: skip
    specs = _specs()
    for name, mmacs in published.items():
        res, first, blocks, mix, classes = specs[name]
        h = (res + 1) // 2
        macs = h * h * first * 3 * 9
        width = first
        for kernel, mid, out, stride in blocks:
            inner = mid or width
            macs += h * h * width * mid  # expansion (0 when there is none)
            h = (h + 1) // 2 if stride == 2 else h
            macs += h * h * inner * kernel * kernel + h * h * inner * out
            width = out
        macs += h * h * width * mix + (mix or width) * classes
        assert round(macs / 1e6, 1) == mmacs, (name, macs)
    csv_models = {r["model"] for r in _rows() if r["round"].startswith("TinyEngine")}
    assert csv_models <= set(specs), csv_models - set(specs)
