"""One settings object, read once from `SHEARS_*` environment variables."""

from functools import lru_cache
from pathlib import Path

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
    max_upload_bytes: int = 512 * 1024 * 1024
    inspect_timeout_s: float = 180.0
    """Time allowed to read an uploaded model's shape and size in a subprocess."""
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
    webhook_allow_private: bool = False
    """Let `callback_url` reach loopback and private addresses (never link-local or metadata ones)."""
    webhook_attempts: int = 5
    log_level: str = "info"

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


@lru_cache
def get_settings() -> Settings:
    return Settings()
