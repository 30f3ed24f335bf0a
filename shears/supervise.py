"""`shears serve`'s embedded worker, watched: reaped when it dies, the cause logged, restarted with backoff.

Without this a worker killed by the kernel's OOM killer stays a zombie beside a healthy-looking API
and every job waits forever.
"""

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable

log = logging.getLogger("shears.serve")

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
HEALTHY_AFTER_S = 60.0  # a worker that ran this long resets the backoff


def why(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with status {returncode}"


class Supervisor:
    """Starts `start()` and starts it again each time it dies, until `stop()`."""

    def __init__(self, start: Callable[[], "subprocess.Popen[bytes]"], name: str = "worker") -> None:
        self._start, self.name = start, name
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self.proc = start()
        self.restarts = 0
        self._thread = threading.Thread(target=self._watch, name=f"shears-supervise-{name}", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        failures = 0
        while True:
            started = time.monotonic()
            code = self.proc.wait()  # reaps it: no zombie
            if self._stopping.is_set():
                return
            failures = 0 if time.monotonic() - started > HEALTHY_AFTER_S else failures + 1
            delay = BACKOFF_S[min(failures, len(BACKOFF_S)) - 1] if failures else BACKOFF_S[0]
            pid = self.proc.pid
            log.error("the embedded %s (pid %d) %s; restarting it in %.0f s", self.name, pid, why(code), delay)
            if self._stopping.wait(delay):
                return
            with self._lock:
                if self._stopping.is_set():
                    return
                self.proc = self._start()
                self.restarts += 1
            log.warning("the embedded %s was restarted (pid %d)", self.name, self.proc.pid)

    def stop(self, timeout: float = 30) -> None:
        """A warm shutdown (SIGTERM), then SIGKILL after `timeout`; no restart after this."""
        with self._lock:
            self._stopping.set()
            proc = self.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
