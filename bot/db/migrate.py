"""Alembic, driven from code: `opsbot db upgrade` and the test suite use the same path."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, inspect

from bot.db.engine import normalise_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the schema to `revision` (all heads by default)."""
    command.upgrade(alembic_config(database_url), revision)


def is_current(engine: Engine) -> bool:
    """Whether the database has been migrated at all (used by readiness)."""
    return inspect(engine).has_table("alembic_version")
