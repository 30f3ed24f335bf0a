"""`ensure_host_tables`: calibrate this CPU's host tables once if they are missing (`shears profile` on a
fresh machine). Kept apart from contract.host_tables, which the API imports and which must not reach the
calibration's TensorFlow code."""

from __future__ import annotations

import os
from typing import Any

from contract import devices
from contract.host_tables import fingerprint, needs_calibration, store
from pruning.estimate.calibrate import DEFAULT_BUDGET_S, calibrate_host


def ensure_host_tables(log: Any = print, budget_s: float | None = None) -> str:
    """Calibrate and cache this CPU's host tables unless they exist or `SHEARS_HOST_CALIBRATION=off`
    (`shears profile` on a fresh machine); returns what happened. A failed calibration keeps the fallback."""
    if os.environ.get("SHEARS_HOST_CALIBRATION", "background") == "off":
        return "off"
    if not needs_calibration():
        return "cached"
    log(f"no host tables for this CPU ({fingerprint()['id']}): calibrating (about 2-4 minutes, once)")
    try:
        path = store(calibrate_host(log=lambda _m: None, budget_s=budget_s or DEFAULT_BUDGET_S))
    except Exception as exc:  # noqa: BLE001 - the estimate goes on with the fallback, which says so
        log(f"host calibration failed ({type(exc).__name__}: {exc}); using the fallback tables")
        return "failed"
    devices.clear_cache()
    log(f"host tables written to {path}")
    return "calibrated"
