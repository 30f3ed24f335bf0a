from pydantic import BaseModel


class Limits(BaseModel):
    upload_bytes: int
    """Bytes of models and datasets the tenant may keep."""
    max_upload_bytes: int
    """Largest single upload."""
    queued_jobs: int
    running_jobs: int
    retention_days: float | None
    """Uploads and finished jobs older than this are deleted; null: kept until deleted."""


class Usage(BaseModel):
    bytes_stored: int
    """Uploads plus the files jobs produced."""
    upload_bytes: int
    """What counts against `limits.upload_bytes`."""
    job_bytes: int
    models: int
    datasets: int
    jobs: int
    jobs_queued: int
    jobs_running: int
    limits: Limits
