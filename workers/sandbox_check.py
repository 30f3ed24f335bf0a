"""`shears sandbox-check`: the built-in attacks (`pruning.attacks`), run through the launcher a job's
engine gets (`workers.sandbox.start_confined`), judged from inside and from outside.

Outside, the checker sets up what an attacker would go for: another job's folder with a secret in it,
a listening TCP port on this host's loopback (besides the database, broker and store ports), a
process of the worker's user to kill, files to overwrite (the installed package, the database file,
`/tmp` outside the job's folder); afterwards it looks whether any of them was reached, and passes the
job's `out/` folder through the worker's own output collection (`workers.outputs.take_outputs`).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pruning
from app.settings import get_settings
from contract import jail
from workers.outputs import take_outputs
from workers.sandbox import EngineFailed, engine_limits, start_confined

FAST_ONLY = (
    "read_environ_worker0",
    "read_memory_worker0",
    "connect_listener",
    "write_tmp_outside",
    "own_files_as_worker_uid",
)


@dataclass
class Attempt:
    name: str
    blocked: bool
    detail: str


def _store_dir() -> Path:
    settings = get_settings()
    return settings.resolved_storage_dir if not settings.storage_url.startswith("s3://") else settings.data_dir


def run(payload: Path | None = None, fast: bool = False) -> tuple[dict[str, object], list[Attempt]]:
    """The probe and every attempt; an attempt is `blocked` when it failed inside and left no trace outside."""
    settings = get_settings()
    root = Path(tempfile.mkdtemp(prefix="shears-sandbox-check-"))
    workdir, other = root / "job", root / "other-job"
    for folder in (workdir, other):
        folder.mkdir()
    secret = other / "secret.txt"
    secret.write_text("another tenant's data")
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [listener.accept() for _ in range(10)], daemon=True).start()
    # A process of this user outside, with a secret in its environment: another engine, say.
    victim = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"], env={"SHEARS_SECRET_KEY": "canary"}
    )
    db_file = settings.data_dir.resolve() / "shears.db"
    escape = Path(tempfile.gettempdir(), f"shears-escape-{os.getpid()}")
    writes = {"installed_package": str(Path(pruning.__file__).parent), "tmp_outside": str(escape)}
    if not db_file.is_file():  # no embedded database here: a stand-in file of this user outside
        db_file = root / "shears.db"
        db_file.write_bytes(b"SQLite format 3\0")
    writes["database_file"] = str(db_file)
    targets: dict[str, Any] = {
        "pids": [os.getpid(), os.getppid(), victim.pid],
        "ports": {"listener": listener.getsockname()[1], "postgres": 5432, "redis": 6379, "store": 9000},
        "other_job": str(other),
        "store": str(_store_dir()),
        "writes": writes,
        "victim": victim.pid,
        "secret": str(secret),
        "out": str(workdir / "out"),
        "timeout": 0.5 if fast else 2.0,
        "only": list(FAST_ONLY) if fast else [],
        "payload": str(payload.resolve()) if payload else None,
    }
    (workdir / "targets.json").write_text(json.dumps(targets))
    found = jail.probe().as_dict()
    limits = engine_limits(2 * settings.job_time_limit_s, settings.engine_memory_bytes or None)
    attempts: list[Attempt] = []
    try:
        with (workdir / "engine.log").open("wb") as stderr:
            readable = (payload.resolve(),) if payload else ()
            proc = start_confined("pruning.attacks", [str(workdir / "targets.json")], workdir, limits, stderr, readable)
            out, _ = proc.communicate(timeout=120)
        for line in out.splitlines():
            if line.startswith('{"name"'):
                seen = json.loads(line)
                attempts.append(Attempt(seen["name"], not seen["done"], seen["detail"]))
        if proc.returncode != 0 and not attempts:
            tail = (workdir / "engine.log").read_text(errors="replace")[-500:]
            attempts.append(Attempt("start", False, f"the confined process failed ({proc.returncode}): {tail}"))
        _look_from_outside(attempts, victim, escape, writes, workdir / "out", root)
    except EngineFailed as exc:
        attempts.append(Attempt("start", False, f"{exc.code}: {exc.message}"))
    finally:
        listener.close()
        victim.kill()
        victim.wait()
        escape.unlink(missing_ok=True)
        for path in writes.values():
            if Path(path).is_dir():
                Path(path, "escaped-by-sandbox-check").unlink(missing_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    return found, attempts


def _look_from_outside(
    attempts: list[Attempt],
    victim: "subprocess.Popen[bytes]",
    escape: Path,
    writes: dict[str, str],
    out: Path,
    root: Path,
) -> None:
    by_name = {a.name: a for a in attempts}

    def succeeded(name: str, detail: str) -> None:
        if name in by_name:
            by_name[name].blocked, by_name[name].detail = False, f"{detail} ({by_name[name].detail})"

    if "signal_other_process" in by_name and victim.poll() is not None:
        succeeded("signal_other_process", "the victim process died")
    if escape.exists():
        succeeded("write_tmp_outside", f"{escape} appeared outside")
    for name, path in writes.items():
        if Path(path).is_dir() and Path(path, "escaped-by-sandbox-check").exists():
            succeeded(f"write_{name}", f"a file appeared in {path}")
    probe = out / "uid-probe"
    if "own_files_as_worker_uid" in by_name and probe.is_file() and not probe.is_symlink():
        owner = probe.stat().st_uid
        if owner == os.geteuid() == 0:
            succeeded("own_files_as_worker_uid", "its files are root's outside: it runs as the worker's uid")
        elif owner == os.geteuid():  # a worker that is not root cannot give it another uid
            by_name["own_files_as_worker_uid"].detail += (
                f"; outside it is this worker's uid {owner} (not root, so no other uid can be given): "
                "only its view keeps the worker's files away (find_worker_files)"
            )
        else:
            by_name["own_files_as_worker_uid"].detail += f"; outside it is uid {owner}, not the worker's {os.geteuid()}"
    for name, output in (("symlink_out_of_out", "model.tflite"), ("hardlink_out_of_out", "report.json")):
        if name in by_name and (out / output).exists():
            try:
                take_outputs(out, (output,), root / "taken")
                succeeded(name, "the worker would have stored it")
            except EngineFailed as exc:
                by_name[name].blocked = True
                by_name[name].detail += f"; the worker refuses it: {exc.code}"


def passed(attempts: list[Attempt]) -> bool:
    """Every built-in attack failed (a `--payload` is reported, not judged)."""
    built_in = [a for a in attempts if a.name != "payload"]
    return bool(built_in) and all(a.blocked for a in built_in)


def report(found: dict[str, object], attempts: list[Attempt], as_json: bool) -> str:
    if as_json:
        rows = [{"name": a.name, "blocked": a.blocked, "detail": a.detail} for a in attempts]
        return json.dumps({"sandbox": found, "attempts": rows, "ok": passed(attempts)}, indent=2)
    lines = [f"sandbox level: {found['level']} (required: {found['required']}); {found}"]
    lines += [
        f"{'ran' if a.name == 'payload' else 'blocked' if a.blocked else 'SUCCEEDED':<10} {a.name:<36} {a.detail}"
        for a in attempts
    ]
    return "\n".join(lines)
