"""API memory while a large model upload streams in, and the time to a 413 past the cap.

Starts the API alone (no worker) on the embedded default, streams a 200 MiB multipart body built by
hand (the file starts with a zip signature, so the server takes it for a `.keras` archive, stores it
and then refuses it as corrupt with 422), and samples the uvicorn process's RSS from
/proc/<pid>/status every 50 ms. The peak is cross-checked with VmHWM, reset before each upload via
/proc/<pid>/clear_refs. Then, with a 100 MiB cap, the same 200 MiB upload twice: once with a
Content-Length (refused from the header) and once chunked (refused by the streaming cap).

Target: RSS growth under 50 MiB for every 200 MiB upload.

    .venv/bin/python bench/upload_memory.py
"""

import json
import os
import secrets
import select
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.services import Service  # noqa: E402

MIB = 1024 * 1024
UPLOAD_BYTES = 200 * MIB
BLOCK = 1 * MIB
SAMPLE_EVERY_S = 0.05
TARGET_GROWTH_MIB = 50.0


def proc_status(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if the kernel refuses."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Sampler(threading.Thread):
    """VmRSS of one process every SAMPLE_EVERY_S seconds until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[int] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.samples.append(proc_status(self.pid, "VmRSS"))
            self._done.wait(SAMPLE_EVERY_S)

    def stop(self) -> list[int]:
        self._done.set()
        self.join()
        self.samples.append(proc_status(self.pid, "VmRSS"))
        return self.samples


def multipart(size: int, boundary: str) -> tuple[Iterator[bytes], int]:
    """A multipart/form-data body with one `file` part of `size` bytes, as a generator, and its length."""
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="big.keras"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    block = bytes(secrets.randbits(8) for _ in range(256)) * (BLOCK // 256)

    def body() -> Iterator[bytes]:
        yield head
        sent = 0
        while sent < size:
            n = min(BLOCK, size - sent)
            chunk = block[:n]
            if sent == 0:
                chunk = b"PK\x03\x04" + chunk[4:]
            yield chunk
            sent += n
        yield tail

    return body(), len(head) + size + len(tail)


@dataclass
class Row:
    case: str
    cap_mib: int
    upload_mib: float
    framing: str
    status: str
    code: str
    seconds: float
    baseline_mib: float
    peak_mib: float
    growth_mib: float
    hwm_growth_mib: float | None
    samples: int
    tmp_files_left: int


def upload(service: Service, key: str, case: str, cap: int, size: int, chunked: bool) -> Row:
    pid = service.procs[0].pid
    boundary = f"shears-bench-{secrets.token_hex(8)}"
    body, length = multipart(size, boundary)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
    if not chunked:
        headers["Content-Length"] = str(length)

    time.sleep(0.5)
    baseline = statistics.median(proc_status(pid, "VmRSS") for _ in range(5))
    hwm_ok = reset_peak(pid)
    hwm_base = proc_status(pid, "VmHWM")
    sampler = Sampler(pid)
    sampler.start()
    started = time.perf_counter()
    try:
        with httpx.Client(timeout=300) as client:
            response = client.post(f"{service.url}/v1/models", content=body, headers=headers)
        elapsed = time.perf_counter() - started
        status = str(response.status_code)
        try:
            code = str(response.json().get("error", {}).get("code", ""))
        except ValueError:
            code = response.text[:40]
    except httpx.HTTPError as exc:
        # The server may answer and close before the client has sent everything.
        elapsed = time.perf_counter() - started
        status, code = type(exc).__name__, str(exc)[:60]
    time.sleep(0.3)
    samples = sampler.stop()
    peak = max(samples)
    hwm = proc_status(pid, "VmHWM") if hwm_ok else None
    tmp_dir = service.root / "artifacts" / ".tmp"
    left = len(list(tmp_dir.iterdir())) if tmp_dir.exists() else 0
    return Row(
        case=case,
        cap_mib=cap // MIB,
        upload_mib=size / MIB,
        framing="chunked" if chunked else "Content-Length",
        status=status,
        code=code,
        seconds=round(elapsed, 2),
        baseline_mib=round(baseline / 1024, 1),
        peak_mib=round(peak / 1024, 1),
        growth_mib=round((peak - baseline) / 1024, 1),
        hwm_growth_mib=None if hwm is None else round((hwm - hwm_base) / 1024, 1),
        samples=len(samples),
        tmp_files_left=left,
    )


@dataclass
class Probe:
    framing: str
    status_line: str
    first_byte_s: float
    sent_mib: float
    upload_mib: float


def probe_413(service: Service, key: str, size: int, chunked: bool) -> Probe:
    """When does the answer come? A raw-socket client that reads while it sends (httpx sends all first)."""
    boundary = f"shears-bench-{secrets.token_hex(8)}"
    body, length = multipart(size, boundary)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {length}"
    head = (
        f"POST /v1/models HTTP/1.1\r\nHost: 127.0.0.1:{service.port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n{framing}\r\n\r\n"
    ).encode()

    def frames() -> Iterator[bytes]:
        for chunk in body:
            yield (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
        if chunked:
            yield b"0\r\n\r\n"

    sock = socket.create_connection(("127.0.0.1", service.port))
    sock.setblocking(False)
    pending = memoryview(head)
    source = frames()
    sent = 0
    started = time.perf_counter()
    answer = b""
    try:
        while True:
            readable, writable, _ = select.select([sock], [sock] if pending is not None else [], [], 30)
            if readable:
                answer = sock.recv(65536)
                break
            if writable and pending is not None:
                try:
                    n = sock.send(pending)
                except (BrokenPipeError, ConnectionResetError):
                    pending = None
                    continue
                sent += n
                pending = pending[n:]
                if not pending:
                    nxt = next(source, None)
                    pending = None if nxt is None else memoryview(nxt)
            if not readable and not writable:
                break
        first = time.perf_counter() - started
    finally:
        sock.close()
    return Probe(
        framing="chunked" if chunked else "Content-Length",
        status_line=answer.split(b"\r\n", 1)[0].decode("latin-1"),
        first_byte_s=round(first, 3),
        sent_mib=round(max(sent - len(head), 0) / MIB, 1),
        upload_mib=size / MIB,
    )


def run_service(
    root: Path, cap: int, cases: list[tuple[str, int, bool]], probes: list[bool] | None = None
) -> tuple[list[Row], list[Probe]]:
    service = Service(root, {"SHEARS_MAX_UPLOAD_BYTES": str(cap)})
    service.start(worker=False)
    try:
        key = service.new_key()
        rows = [upload(service, key, case, cap, size, chunked) for case, size, chunked in cases]
        return rows, [probe_413(service, key, UPLOAD_BYTES, chunked) for chunked in probes or []]
    finally:
        service.stop()


def table(rows: list[Row]) -> str:
    cols = [
        ("case", "case"),
        ("cap MiB", "cap_mib"),
        ("upload MiB", "upload_mib"),
        ("framing", "framing"),
        ("status", "status"),
        ("error code", "code"),
        ("time s", "seconds"),
        ("RSS before MiB", "baseline_mib"),
        ("RSS peak MiB", "peak_mib"),
        ("growth MiB", "growth_mib"),
        ("VmHWM growth MiB", "hwm_growth_mib"),
        ("samples", "samples"),
        ("temp files left", "tmp_files_left"),
    ]
    lines = ["| " + " | ".join(c for c, _ in cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        values = asdict(row)
        lines.append("| " + " | ".join("-" if values[k] is None else str(values[k]) for _, k in cols) + " |")
    return "\n".join(lines)


def probe_table(probes: list[Probe]) -> str:
    lines = [
        "| upload MiB | framing | answer | answer after s | MiB sent by then |",
        "|---|---|---|---|---|",
    ]
    for p in probes:
        lines.append(f"| {p.upload_mib} | {p.framing} | {p.status_line} | {p.first_byte_s} | {p.sent_mib} |")
    return "\n".join(lines)


def main() -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="shears-bench-upload-") as tmp:
        rows, _ = run_service(
            Path(tmp) / "cap300",
            300 * MIB,
            [
                ("warm-up", 1 * MIB, False),
                ("stored, then 422", UPLOAD_BYTES, False),
                ("stored, then 422", UPLOAD_BYTES, True),
            ],
        )
        capped, probes = run_service(
            Path(tmp) / "cap100",
            100 * MIB,
            [
                ("warm-up", 1 * MIB, False),
                ("over the cap: 413", UPLOAD_BYTES, False),
                ("over the cap: 413", UPLOAD_BYTES, True),
            ],
            probes=[False, True],
        )
        rows += capped

    print(table(rows))
    print()
    print("Time to the 413, from a raw-socket client that reads while it sends:")
    print()
    print(probe_table(probes))
    print()
    expected = {"stored, then 422": "422", "over the cap: 413": "413"}
    problems = []
    for row in rows:
        if row.case == "warm-up":
            continue
        if row.status != expected[row.case]:
            problems.append(f"{row.case} ({row.framing}): got {row.status} {row.code}")
        worst = max(row.growth_mib, row.hwm_growth_mib or 0.0)
        if worst >= TARGET_GROWTH_MIB:
            problems.append(f"{row.case} ({row.framing}): RSS grew {worst} MiB (target < {TARGET_GROWTH_MIB})")
        if row.tmp_files_left:
            problems.append(f"{row.case} ({row.framing}): {row.tmp_files_left} temporary upload file(s) left")
    for p in probes:
        if " 413 " not in p.status_line + " ":
            problems.append(f"413 probe ({p.framing}): got {p.status_line!r}")
    worst_growth = max(max(r.growth_mib, r.hwm_growth_mib or 0.0) for r in rows if r.case != "warm-up")
    verdict = "MET" if not problems else "MISSED"
    target = f"API RSS growth < {TARGET_GROWTH_MIB:.0f} MiB for a 200 MiB upload"
    print(f"target: {target}: {verdict} (worst {worst_growth} MiB)")
    for problem in problems:
        print(f"  - {problem}")
    print(f"1-min load average: {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end ({os.cpu_count()} cores)")

    out = REPO / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "upload_memory.json").write_text(
        json.dumps(
            {
                "rows": [asdict(r) for r in rows],
                "probes_413": [asdict(p) for p in probes],
                "worst_growth_mib": worst_growth,
                "problems": problems,
            },
            indent=2,
        )
    )
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
