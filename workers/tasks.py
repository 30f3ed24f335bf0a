"""Thin tasks: load a job by id, call the engine, record the result."""

from workers.celery_app import celery_app
from workers.pipeline import execute


@celery_app.task(name="jobs.run", acks_late=True, reject_on_worker_lost=True)
def run_job(job_id: str) -> None:
    execute(job_id)
