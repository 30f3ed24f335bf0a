"""The `host` tables of the CPU this worker runs on: fetched, calibrated once per fingerprint, shared.

Tables live in `<data_dir>/host-profiles/host-<fingerprint>.json` (contract.host_tables) and in the
artifact store under `system/host-profiles/`, so every worker with the same CPU fingerprint reuses one
calibration. `SHEARS_HOST_CALIBRATION` says when a worker without tables calibrates:
`background` (default: at worker start, in a separate process, while jobs run on the fallback tables,
whose estimates say so), `first-job` (before its first job, up to about 3 minutes) or `off`.
Calibration runs `python -m pruning.estimate calibrate-host` in a child process: the worker itself
never imports TensorFlow. The engine gets the tables through `SHEARS_HOST_PROFILE` (a copy in its own folder:
workers.sandbox.run_engine). Tables of an older `TABLES_VERSION` count as none: they are fetched or calibrated
again.
"""

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

from app.settings import Settings
from app.storage import ArtifactStore
from contract import host_tables

log = logging.getLogger("shears.worker")
_lock = threading.Lock()
_started = threading.Event()


def _key() -> str:
    return f"system/host-profiles/host-{host_tables.fingerprint()['id']}.json"


def _local(settings: Settings) -> Path:
    """`SHEARS_HOST_PROFILES_DIR` if set, else `<data_dir>/host-profiles`, as contract.host_tables reads it
    (absolute: the engine runs in another folder)."""
    folder = os.environ.get("SHEARS_HOST_PROFILES_DIR") or str(settings.data_dir / "host-profiles")
    return Path(folder).absolute() / host_tables.cached_path().name


def _current(path: Path) -> bool:
    """`path` holds host tables of the version this code writes (older ones are calibrated again)."""
    data = host_tables.read(path)
    return data is not None and int(data.get("tables_version", 1)) >= host_tables.TABLES_VERSION


def _calibrate(settings: Settings, store: ArtifactStore) -> None:
    with _lock:
        local = _local(settings)
        if _current(local):
            return
        log.info("calibrating the host tables for CPU %s", host_tables.fingerprint()["id"])
        # Not the tables handed to an earlier job of this process: they would count as this CPU's whatever their age.
        env = {k: v for k, v in os.environ.items() if k != "SHEARS_HOST_PROFILE"}
        env["SHEARS_HOST_PROFILES_DIR"] = str(local.parent)
        done = subprocess.run(
            [sys.executable, "-m", "pruning.estimate", "calibrate-host", "--if-missing", "--quiet"],
            env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not local.exists():
            log.warning("host calibration failed: %s", (done.stderr or done.stdout).strip()[-500:])
            return
        try:
            store.put_file(_key(), local)
        except Exception:  # the local copy still serves this machine
            log.warning("could not share the host tables in the artifact store", exc_info=True)


def engine_tables(settings: Settings, store: ArtifactStore) -> Path | None:
    """This CPU's tables for the engine (fetched from the store, or calibrated as the mode says); None if
    there are none yet (the engine then uses the fallback and says so in every host estimate's basis)."""
    mode = os.environ.get("SHEARS_HOST_CALIBRATION", "background")
    local = _local(settings)
    if _current(local):  # the common case: one read of the tables per job
        return local
    try:
        if store.exists(_key()):
            with store.local_copy(_key()) as path:
                local.parent.mkdir(parents=True, exist_ok=True)
                local.write_bytes(path.read_bytes())
    except Exception:
        log.warning("could not read shared host tables", exc_info=True)
    current = _current(local)
    if not current and mode == "first-job":
        _calibrate(settings, store)
        current = _current(local)
    elif not current and mode == "background":
        start_background(settings, store)
    return local if current else None


def start_background(settings: Settings, store: ArtifactStore) -> None:
    """Calibrate once in a daemon thread (its child process does the work), if this CPU has no tables."""
    if os.environ.get("SHEARS_HOST_CALIBRATION", "background") != "background" or _started.is_set():
        return
    _started.set()
    if not _current(_local(settings)):
        threading.Thread(target=_calibrate, args=(settings, store), name="shears-calibrate", daemon=True).start()
