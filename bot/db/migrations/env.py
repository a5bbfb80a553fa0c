"""Alembic environment: runs migrations online against the configured URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from bot.db.engine import DEFAULT_TIMEOUTS, make_engine
from bot.db.migrate import MIGRATION_LOCK, migration_timeouts
from bot.models import metadata

config = context.config


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    timeouts = config.attributes.get("timeouts") or migration_timeouts(DEFAULT_TIMEOUTS)
    engine = make_engine(url, timeouts=timeouts)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Every task runs `opsbot db upgrade` at start: one migrates, the
                # others wait here and then find nothing left to do.
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `opsbot db upgrade`")
run_migrations_online()
