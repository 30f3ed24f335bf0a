"""One settings object, read once from `SHEARS_*` environment variables."""

import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SHEARS_", extra="ignore")

    data_dir: Path = Path("./data")
    """Root of the embedded default: SQLite file, broker folders, artifacts."""
    database_url: str = ""
    """SQLAlchemy URL; empty means SQLite at `<data_dir>/shears.db`."""
    broker_url: str = ""
    """Celery broker URL; empty means kombu's `filesystem://` under `<data_dir>/broker`."""
    storage_dir: Path | None = None
    """Artifact folder; empty means `<data_dir>/artifacts`."""
    storage_url: str = ""
    """Where artifacts live: empty for the local folder above, or `s3://bucket/prefix` for S3."""
    s3_endpoint_url: str = ""
    """An S3-compatible endpoint (MinIO, Ceph, R2, ...); empty for AWS. Credentials come from boto3's
    usual chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), a profile or a role."""
    s3_public_endpoint_url: str = ""
    """The endpoint clients reach the store by, for presigned download URLs, when it differs from
    `s3_endpoint_url` (e.g. `http://localhost:9000` for compose's `http://minio:9000`)."""
    s3_region: str = ""
    """The bucket's region; empty means boto3's default (AWS_DEFAULT_REGION)."""
    s3_multipart_bytes: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    """Files above this go to S3 in parts of this size (S3's minimum part is 5 MiB)."""
    download_url_expires_s: int = Field(900, ge=1, le=7 * 24 * 3600)
    """Lifetime of the presigned download URLs of `GET /v1/jobs/{id}/artifacts/{name}/url`."""
    max_upload_bytes: int = 512 * 1024 * 1024
    max_dataset_bytes: int = 20 * 1024**3
    """Largest dataset, sent by resumable (tus) upload above `max_upload_bytes`."""
    dataset_check_timeout_s: float = 3600.0
    """How long the confined checker may take to check and convert one dataset."""
    dataset_import_prefixes: str = ""
    """Comma-separated `s3://bucket/prefix` under which `POST /v1/datasets/import` may read objects with the
    server's S3 credentials; `{tenant}` stands for the caller's tenant name. Empty: no imports."""
    inspect_timeout_s: float = 180.0
    """Time allowed to read an uploaded model's shape and size in a subprocess."""
    max_concurrent_checks: int = Field(2, ge=1)
    """Upload checks (model and dataset) one API process runs at once; more wait their turn."""
    check_queue_wait_s: float = Field(30.0, ge=0)
    """How long an upload waits for a free check before the answer is 503 `checks_busy`."""
    check_memory_bytes: int = 0
    """Address-space limit of an upload check (0: the host's RAM). TensorFlow reserves far more
    virtual memory than it uses: a model check needs several GiB of it."""
    job_time_limit_s: int = 3600
    worker_concurrency: int = 1
    engine_memory_bytes: int = 0
    """Address-space limit of the engine process (0: none). TensorFlow reserves far more virtual
    memory than it uses, so set this generously (e.g. 32 GiB) if at all."""
    max_attempts: int = 3
    """Times a job is started before it fails with `attempts_exhausted` (crashes, lost workers)."""
    heartbeat_s: float = 5.0
    stale_after_s: float = 60.0
    """A running job whose heartbeat is older than this is returned to the queue by the reaper."""
    requeue_after_s: float = 300.0
    """A job queued this long since its task was sent gets its task sent again (a lost message)."""
    quota_running_jobs: int = 2
    """Jobs one tenant may have running at once; more wait in the queue."""
    quota_queued_jobs: int = 20
    """Jobs one tenant may have waiting; a submit past it answers 429."""
    quota_upload_bytes: int = 20 * 1024**3
    """Bytes one tenant may keep in uploaded models and datasets."""
    retention_days: float = Field(0.0, ge=0)
    """Uploads and finished jobs older than this many days are deleted by the housekeeping sweep (0: kept)."""
    retention_sweep_s: float = Field(60.0, gt=0)
    """How often each worker runs the housekeeping sweep (retention, `expires_in`, deletes of running jobs)."""
    min_client_version: str = "0.1.0"
    """Oldest `shears` client version served; an older one (by its `X-Shears-Client` or
    `User-Agent`) gets 426 `client_too_old`. Empty: every version."""
    webhook_allow_private: bool = False
    """Let `callback_url` reach loopback and private addresses (never link-local or metadata ones)."""
    webhook_attempts: int = 5
    metrics_token: str = ""
    """When set, `/metrics` answers only requests with `Authorization: Bearer <this token>`."""
    secret_key: str = ""
    """Signs the dashboard's session cookies (with the API key's hash, so revoking a key ends its
    sessions). Set it in production, the same on every API replica: empty means a random secret per
    process, so sessions end when the API restarts and work only on the replica that opened them."""
    log_level: str = "info"
    log_format: str = "text"
    """`json` for one JSON object per log line (with request and job ids), `text` for people."""
    queue_prune: str = "shears"
    """Celery queue of prune and sweep jobs (the fine-tuning work), e.g. `gpu` to send them to GPU hosts."""
    queue_profile: str = "shears"
    """Celery queue of profile jobs (export and estimate, CPU only), e.g. `cpu`."""
    queue_control: str = "shears"
    """Celery queue of the small tasks: webhook deliveries and sweep collection."""
    worker_queues: str = ""
    """Comma-separated queues a `shears worker` serves (`--queues` overrides); empty: all of them."""
    gpu_queues: str = "gpu"
    """Comma-separated queues served by GPU hosts: their workers run one job at a time and let
    TensorFlow grow GPU memory as needed instead of taking it all."""

    @field_validator("storage_url")
    @classmethod
    def _storage_url(cls, url: str) -> str:
        bucket = url.removeprefix("s3://").partition("/")[0]
        if url and not (url.startswith("s3://") and re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket)):
            raise ValueError(f"SHEARS_STORAGE_URL must be empty (the local folder) or s3://bucket/prefix, not {url!r}")
        return url

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'shears.db').resolve()}"

    @property
    def resolved_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def resolved_storage_dir(self) -> Path:
        return (self.storage_dir or self.data_dir / "artifacts").resolve()

    @property
    def broker_folder(self) -> Path:
        return (self.data_dir / "broker").resolve()

    @property
    def all_queues(self) -> list[str]:
        """Every queue work is sent to: what a worker serves unless told otherwise."""
        return list(dict.fromkeys([self.queue_prune, self.queue_profile, self.queue_control]))

    @property
    def served_queues(self) -> list[str]:
        return [q.strip() for q in self.worker_queues.split(",") if q.strip()] or self.all_queues

    @property
    def worker_beat_s(self) -> float:
        """How often a worker says it is alive (and reaps): a few times per `stale_after_s`, at most every 15 s."""
        return min(15.0, max(1.0, self.stale_after_s / 4))

    @property
    def worker_fresh_s(self) -> float:
        """A worker heard from within this long counts as live (`/readyz`)."""
        return max(self.stale_after_s, 3 * self.worker_beat_s)

    @property
    def job_queues(self) -> list[str]:
        """The queues jobs are sent to (not the control queue)."""
        return list(dict.fromkeys([self.queue_prune, self.queue_profile]))

    @property
    def gpu_queue_names(self) -> set[str]:
        return {q.strip() for q in self.gpu_queues.split(",") if q.strip()}


@lru_cache
def get_settings() -> Settings:
    return Settings()
