"""The Celery application the workers run; configured exactly like the API's producer."""

import ctypes
import logging
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from celery import Celery
from celery.signals import setup_logging, task_postrun, task_prerun, worker_process_init, worker_ready, worker_shutdown

from app import logs
from app.db import get_engine, session_scope
from app.housekeeping import service as housekeeping
from app.jobs import lifecycle, repository
from app.queue import celery_config
from app.settings import get_settings
from app.storage import get_store
from workers.host_calibration import start_background
from workers.pipeline import owner_id

log = logging.getLogger("shears.worker")

celery_app = Celery("shears", include=["workers.tasks"])
celery_app.conf.update(celery_config(get_settings()))


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # A forked child must not share the parent's database connections.
    get_engine().dispose(close=False)
    # Nor outlive the worker's main process (SIGKILLed by the OOM killer, say): its job's lease then
    # goes stale and a live worker takes the job over from its checkpoint (PR_SET_PDEATHSIG).
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


@setup_logging.connect
def _logging(**_: object) -> None:
    settings = get_settings()
    logs.configure(settings.log_level, settings.log_format)


@task_prerun.connect
def _bind_ids(task: Any = None, args: Any = None, **_: object) -> None:
    """Log lines of a task carry its job id and the request id of the submit that sent it."""
    request_id = task.request.get("shears_request_id") if task is not None else None
    job_id = args[0] if args and isinstance(args[0], str) and args[0].startswith("job_") else None
    task._shears_ids = logs.bound(request_id=request_id, job_id=job_id)
    task._shears_ids.__enter__()


@task_postrun.connect
def _unbind_ids(task: Any = None, **_: object) -> None:
    ids = getattr(task, "_shears_ids", None)
    if ids is not None:
        task._shears_ids = None
        ids.__exit__(None, None, None)


def _register(worker_id: str) -> None:
    """Say this worker is alive and what it serves; forget workers silent for a long time."""
    settings = get_settings()
    now = datetime.now(UTC)
    with session_scope() as session:
        forgotten = now - timedelta(seconds=20 * settings.stale_after_s)
        repository.register_worker(session, worker_id, ",".join(settings.served_queues), now, forgotten)


def _reaper(stop: threading.Event, worker_id: str) -> None:
    """Heartbeat this worker, return jobs of dead workers to the queue and resend lost messages, forever."""
    settings = get_settings()
    while True:
        try:
            _register(worker_id)
            with session_scope() as session:
                touched = lifecycle.reap(session, settings)
            if touched:
                log.info("reaper requeued or failed %s", touched)
        except Exception:  # the database may be away for a while: try again next round
            log.warning("reaper round failed", exc_info=True)
        if stop.wait(settings.worker_beat_s):
            return


def _housekeeping(stop: threading.Event) -> None:
    """Retention (SHEARS_RETENTION_DAYS, uploads' `expires_in`) and deletes of stopped jobs, forever."""
    settings = get_settings()
    while not stop.wait(settings.retention_sweep_s):
        try:
            with session_scope() as session:
                removed = housekeeping.sweep(session, settings, get_store(settings))
            if removed:
                log.info("housekeeping removed %s", removed)
        except Exception:
            log.warning("housekeeping round failed", exc_info=True)


@worker_ready.connect
def _start_reaper(**_: object) -> None:
    threading.Thread(target=_housekeeping, args=(threading.Event(),), name="shears-housekeeping", daemon=True).start()
    threading.Thread(target=_reaper, args=(threading.Event(), owner_id()), name="shears-reaper", daemon=True).start()
    try:  # this CPU's host tables, if no worker with its fingerprint has calibrated yet (workers.host_calibration)
        start_background(get_settings(), get_store(get_settings()))
    except Exception:
        log.warning("could not start the host calibration", exc_info=True)


@worker_shutdown.connect
def _unregister(**_: object) -> None:
    try:
        with session_scope() as session:
            repository.unregister_worker(session, owner_id())
    except Exception:
        log.warning("could not unregister this worker", exc_info=True)
