"""Alembic, driven from code: `opsbot db upgrade` and the test suite use the same path."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, inspect

from bot.db.engine import DEFAULT_TIMEOUTS, DbTimeouts, normalise_url

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x0B5B08  # names "opsbot migrations" among advisory locks

# A migration's statements may rewrite a table, and every task but one waits for
# the migration lock (a statement too) while another task migrates: the service's
# statement timeout would fail them. Ten minutes still ends a migration stuck
# behind a lock rather than hanging a deploy.
MIGRATION_STATEMENT_TIMEOUT_S = 600.0


def migration_timeouts(timeouts: DbTimeouts) -> DbTimeouts:
    """The service's timeouts, with room for a migration's statements."""
    return dataclasses.replace(
        timeouts, statement_s=max(timeouts.statement_s, MIGRATION_STATEMENT_TIMEOUT_S)
    )


def alembic_config(database_url: str, *, timeouts: DbTimeouts = DEFAULT_TIMEOUTS) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    config.attributes["timeouts"] = migration_timeouts(timeouts)
    return config


def upgrade(
    database_url: str, revision: str = "heads", *, timeouts: DbTimeouts = DEFAULT_TIMEOUTS
) -> None:
    """Bring the schema to `revision` (all heads by default)."""
    command.upgrade(alembic_config(database_url, timeouts=timeouts), revision)


def is_current(engine: Engine) -> bool:
    """Whether the database has been migrated at all (used by readiness)."""
    return inspect(engine).has_table("alembic_version")
