"""Which host tables the `host` profile uses: the ones calibrated on this CPU, or a stated fallback.

The host's latency tables (contract/profiles/host.json's format) only hold on the CPU they were
micro-benchmarked on. Each calibration is stored per CPU fingerprint (model name, a hash of the
feature flags, core count, architecture) in `<cache dir>/host-<id>.json`; the committed
contract/profiles/host.json is only the fallback, and an estimate made with tables from another CPU says
so in its `basis`.

Where the tables are looked up, first match wins:
1. `SHEARS_HOST_PROFILE`: a host.json-format file (the worker passes the cached file to the engine's
   sandbox this way);
2. `<cache dir>/host-<fingerprint id>.json`, the cache dir being `SHEARS_HOST_PROFILES_DIR`, else
   `$SHEARS_DATA_DIR/host-profiles`, else `./data/host-profiles` (the data folder's default);
3. contract/profiles/host.json (committed; calibrated on another machine).

Pure Python (the API imports it through contract.devices): no TensorFlow, no NumPy.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

CALIBRATE_HINT = "python -m pruning.estimate calibrate-host"


def _cpuinfo() -> dict[str, str]:
    """The first processor block of /proc/cpuinfo (x86: model name, flags; aarch64: CPU part, Features)."""
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if ":" in line:
                    key, value = line.split(":", 1)
                    out.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return out


@lru_cache(maxsize=1)
def fingerprint() -> dict[str, Any]:
    """This CPU: model, flags hash, core count, architecture, and an `id` made of them."""
    info = _cpuinfo()
    arch = platform.machine() or "unknown"
    model = info.get("model name") or info.get("Model") or info.get("Hardware") or ""
    if not model and "CPU part" in info:  # aarch64: the implementer/part pair names the core
        model = f"arm implementer {info.get('CPU implementer', '?')} part {info['CPU part']}"
    model = model or platform.processor() or "unknown"
    flags = " ".join(sorted((info.get("flags") or info.get("Features") or "").split()))
    flags_hash = hashlib.sha256(flags.encode()).hexdigest()[:12] if flags else "none"
    cores = os.cpu_count() or 1
    slug = re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:40] or "cpu"
    digest = hashlib.sha256(f"{arch}|{model}|{flags_hash}|{cores}".encode()).hexdigest()[:10]
    return {"id": f"{slug}-{cores}c-{digest}", "model": model, "flags_sha256": flags_hash, "cores": cores,
            "arch": arch}  # fmt: skip


def describe(fp: dict[str, Any]) -> str:
    return (
        f"{fp.get('id')} ({fp.get('model')}, {fp.get('cores')} cores, {fp.get('arch')}, flags {fp.get('flags_sha256')})"
    )


def cache_dir() -> Path:
    if os.environ.get("SHEARS_HOST_PROFILES_DIR"):
        return Path(os.environ["SHEARS_HOST_PROFILES_DIR"])
    return Path(os.environ.get("SHEARS_DATA_DIR") or "./data") / "host-profiles"


def cached_path(fp: dict[str, Any] | None = None) -> Path:
    return cache_dir() / f"host-{(fp or fingerprint())['id']}.json"


MAX_TABLES_BYTES = 16 * 2**20
"""Host tables are tens of kilobytes; a file far bigger is not read as tables."""


def read(path: Path) -> dict[str, Any] | None:
    """The host tables in the regular file `path` (never through a link), or None if it holds none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # no link, no waiting on a FIFO
        with os.fdopen(fd, encoding="utf-8") as f:
            data = json.loads(f.read()) if os.fstat(f.fileno()).st_size <= MAX_TABLES_BYTES else None
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "profile" in data and "runtime" in data else None


TABLES_VERSION = 11
"""Of the tables `calibrate-host` writes; cached tables of an older version are calibrated again (version 2:
the attention micro-benchmarks and the per-op `op_efficiency`, e.g. int8 BATCH_MATMUL's reference kernel;
version 3: channel tiles up to 64 (x86 AMX), the per-element term on tile-padded outputs (`padded_outputs`), and
the weight-stream sweep from 0.25 MiB (`weight_stream`), which replaces the LLC spill term; version 4: a per-output
term of ops with a kernel of their own (`op_cycles_per_output`: int8 BATCH_MATMUL on TFLite's reference kernel);
version 5: micro-benchmarks timed by the inference thread's CPU time in batches (pruning.host), not wall time;
version 6: the per-op overhead is the median of repeated readings, at the start and at the end; version 7: an op
on TFLite's own kernel, an extra delegate partition and a loop variable (pruning.estimate.runtime_bench); version
8: the weight stream of GEMMs of several rows (`weight_stream_rows`, the same module); version 9: what each op
of a graph of hundreds of ops costs beyond the per-op overhead (`graph_op_overhead`, the same module); version 10:
how much slower a MAC is in a GEMM of 4, 16 or 64 rows than of 256 (`gemm_rows`, the same module); version 11:
the several-row weight stream timed on GEMMs of 16 rows, float32 and int8 (`weight_stream_rows` by dtype))."""


def fallback() -> dict[str, Any]:
    return dict(json.loads(resources.files("contract").joinpath("profiles", "host.json").read_text(encoding="utf-8")))


def load() -> tuple[dict[str, Any], str, bool]:
    """(host.json content, where it came from, whether it was calibrated on this CPU)."""
    here = fingerprint()
    candidates: list[tuple[Path, str]] = []
    if os.environ.get("SHEARS_HOST_PROFILE"):
        candidates.append((Path(os.environ["SHEARS_HOST_PROFILE"]), "SHEARS_HOST_PROFILE"))
    candidates.append((cached_path(here), "the host-profile cache"))
    unread = ""
    for path, label in candidates:
        data = read(path)
        if data is not None and (label == "SHEARS_HOST_PROFILE" or data.get("tables_version", 1) >= TABLES_VERSION):
            return data, f"{label} ({path})", _same_cpu(data, here)
        if data is None and label == "SHEARS_HOST_PROFILE":
            # Said, not skipped in silence: a sandboxed engine that could not read the tables its worker calibrated
            # once reported this CPU as "not calibrated" on every estimate (2026-12-08).
            unread = f" (SHEARS_HOST_PROFILE names {path}, which could not be read here as host tables)"
    data = fallback()
    return data, f"the committed fallback contract/profiles/host.json{unread}", _same_cpu(data, here)


def _same_cpu(data: dict[str, Any], here: dict[str, Any]) -> bool:
    return bool((data.get("machine") or {}).get("fingerprint", {}).get("id") == here["id"])


def basis_note(data: dict[str, Any], origin: str, same: bool) -> str:
    """The sentence every host estimate carries: whose tables, and whether they are this CPU's."""
    fp = (data.get("machine") or {}).get("fingerprint") or {}
    tables = (
        describe(fp) if fp else f"{(data.get('machine') or {}).get('cpu', 'unknown CPU')}, fingerprint not recorded"
    )
    if same:
        return f"host tables calibrated on this CPU, fingerprint {tables}, from {origin}"
    return (
        f"host tables from ANOTHER CPU: fingerprint {tables}, from {origin}; this CPU is {describe(fingerprint())} "
        f"and has not been calibrated, so the estimate may be off by tens of percent (run `{CALIBRATE_HINT}`)"
    )


def needs_calibration() -> bool:
    """No tables for this CPU in the cache (or SHEARS_HOST_PROFILE), and the fallback is another CPU's."""
    return not load()[2]


def store(data: dict[str, Any], path: Path | None = None) -> Path:
    """Write calibrated tables to the cache for their fingerprint (atomically: workers may share the folder)."""
    target = path or cache_dir() / f"host-{data['machine']['fingerprint']['id']}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    tmp.replace(target)
    return target
