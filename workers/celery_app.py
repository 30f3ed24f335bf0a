"""The Celery application the workers run; configured exactly like the API's producer."""

from celery import Celery
from celery.signals import worker_process_init

from app.db import get_engine
from app.queue import celery_config
from app.settings import get_settings

celery_app = Celery("shears", include=["workers.tasks"])
celery_app.conf.update(celery_config(get_settings()))


@worker_process_init.connect
def _fresh_connections(**_: object) -> None:
    # A forked child must not share the parent's database connections.
    get_engine().dispose(close=False)
