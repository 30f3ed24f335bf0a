"""bench/published_mcu.csv: the MCU fit sees only the rows named before fitting; every row is cited."""

import csv
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
        assert r["url"].startswith(f"https://github.com/mlcommons/tiny_results_{r['round']}/"), r
        assert r["url"].endswith("/performance/results.txt"), r
        assert float(r["inferences_per_s"]) > 0, r
        assert float(r["clock_mhz"]) > 0, r
    # rows the estimator checks are on a core with a profile; the others are never estimated
    assert {r["core"] for r in rows if r["use"] in {"fitted", "checked"}} <= {"cortex-m4f", "cortex-m33", "cortex-m7"}
