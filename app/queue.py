"""Celery configuration shared by the API (producer) and the workers, and the one way to enqueue.

The API enqueues by task name and never imports `workers`.
"""

from functools import lru_cache
from typing import Any

from celery import Celery

from app.logs import current_request_id
from app.settings import Settings, get_settings

RUN_JOB = "jobs.run"
DELIVER_WEBHOOK = "webhooks.deliver"
COLLECT_SWEEP = "sweeps.collect"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Broker and task settings; the same in producer and worker so both see the same queues."""
    transport_options: dict[str, Any] = {}
    if settings.resolved_broker_url.startswith("filesystem://"):
        folder = settings.broker_folder
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    else:
        # A job may run for an hour: keep unacked messages invisible for longer than that.
        transport_options = {"visibility_timeout": settings.job_time_limit_s + 600}
    return {
        "broker_url": settings.resolved_broker_url,
        "broker_transport_options": transport_options,
        "broker_connection_retry_on_startup": True,
        "task_default_queue": settings.queue_control,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "worker_prefetch_multiplier": 1,
        # TensorFlow does not give memory back: a fresh child process for every job.
        "worker_max_tasks_per_child": 1,
        "task_time_limit": settings.job_time_limit_s,
        "task_soft_time_limit": max(settings.job_time_limit_s - 60, 60),
        "worker_hijack_root_logger": False,
    }


@lru_cache
def producer() -> Celery:
    settings = get_settings()
    celery = Celery("shears")
    celery.conf.update(celery_config(settings))
    return celery


def queue_for(task: str, kind: str | None = None, settings: Settings | None = None) -> str:
    """The queue a task goes to: jobs by their kind of work, everything else to the control queue."""
    settings = settings or get_settings()
    if task == RUN_JOB:
        return settings.queue_profile if kind == "profile" else settings.queue_prune
    return settings.queue_control


def enqueue(task: str, *args: Any, kind: str | None = None) -> None:
    headers = {"shears_request_id": rid} if (rid := current_request_id()) else None
    producer().send_task(task, args=list(args), queue=queue_for(task, kind), headers=headers)


def broker_reachable(timeout: float = 2.0) -> bool:
    try:
        with producer().connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
        return True
    except Exception:
        return False
