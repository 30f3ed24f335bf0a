"""`shears db upgrade` and the Alembic configuration, usable from any working directory."""

from pathlib import Path

from alembic import command
from alembic.config import Config

import migrations
from app.settings import get_settings


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    database_url = url or get_settings().resolved_database_url
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    if database_url.startswith("sqlite"):
        get_settings().data_dir.mkdir(parents=True, exist_ok=True)
    return config


def upgrade(url: str | None = None) -> None:
    command.upgrade(alembic_config(url), "head")


def check(url: str | None = None) -> None:
    """Raise if the tables in code differ from what the migrations build."""
    command.check(alembic_config(url))


def ensure_embedded_schema() -> None:
    """On the embedded default (SQLite), bring the schema up to date; production runs `shears db upgrade`."""
    if get_settings().resolved_database_url.startswith("sqlite"):
        upgrade()
