"""The Celery application the workers run; configured exactly like the API's producer."""

import logging
import threading

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from app.db import get_engine, session_scope
from app.jobs import service
from app.queue import celery_config
from app.settings import get_settings

log = logging.getLogger("shears.worker")

celery_app = Celery("shears", include=["workers.tasks"])
celery_app.conf.update(celery_config(get_settings()))

REAP_EVERY_S = 15.0


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # A forked child must not share the parent's database connections.
    get_engine().dispose(close=False)


def _reaper(stop: threading.Event) -> None:
    """Return jobs of dead workers to the queue and resend lost messages, forever."""
    settings = get_settings()
    while not stop.wait(REAP_EVERY_S):
        try:
            with session_scope() as session:
                touched = service.reap(session, settings)
            if touched:
                log.info("reaper requeued or failed %s", touched)
        except Exception:  # the database may be away for a while: try again next round
            log.warning("reaper round failed", exc_info=True)


@worker_ready.connect
def _start_reaper(**_: object) -> None:
    threading.Thread(target=_reaper, args=(threading.Event(),), name="shears-reaper", daemon=True).start()
