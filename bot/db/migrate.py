"""Alembic, driven from code: `opsbot db upgrade` and the test suite use the same path."""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, inspect, text

from bot.db.engine import DEFAULT_TIMEOUTS, DbTimeouts, make_engine, normalise_url

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

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
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation would choke on '%' in a URL-encoded password.
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    config.attributes["timeouts"] = migration_timeouts(timeouts)
    return config


def upgrade(
    database_url: str, revision: str = "heads", *, timeouts: DbTimeouts = DEFAULT_TIMEOUTS
) -> None:
    """Bring the schema to `revision` (all heads by default).

    A database already at the heads (every restart) is left alone without loading
    Alembic, which then stays out of the serving process's memory.
    """
    if revision == "heads" and _applied(database_url, timeouts) == expected_heads():
        return
    from alembic import command

    command.upgrade(alembic_config(database_url, timeouts=timeouts), revision)


def script_heads() -> frozenset[str]:
    """The revisions no other migration revises, read from the migration files' literals."""
    revisions, revised = _script_revisions()
    return revisions - revised


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this code's migration files define."""
    return _script_revisions()[0]


def _script_revisions() -> tuple[frozenset[str], frozenset[str]]:
    """The revisions the migration files define, and those some file revises."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target: ast.expr
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                target, value = node.target, node.value
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
            else:
                continue
            if not isinstance(target, ast.Name):
                continue
            if target.id == "revision":
                revisions.add(ast.literal_eval(value))
            elif target.id == "down_revision":
                down = ast.literal_eval(value)
                revised.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions), frozenset(revised)


def _applied(database_url: str, timeouts: DbTimeouts) -> frozenset[str]:
    """The revisions the database records as applied (none before its first migration)."""
    engine = make_engine(database_url, timeouts=timeouts)
    try:
        return applied_revisions(engine)
    finally:
        engine.dispose()


def applied_revisions(engine: Engine) -> frozenset[str]:
    """The revisions `engine`'s database records as applied (none before its first migration)."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return frozenset()
        rows = connection.execute(text("SELECT version_num FROM alembic_version"))
        return frozenset(str(row[0]) for row in rows)


@functools.cache
def expected_heads() -> frozenset[str]:
    """The heads this code's migrations end at, read once (at start, by `upgrade`): the
    files do not change under a running process."""
    return script_heads()


def schema_problem(engine: Engine) -> str | None:
    """Why the database's schema is not the one this code expects (None: it is; readiness)."""
    applied, expected = applied_revisions(engine), expected_heads()
    if applied == expected:
        return None
    if not applied:
        return "database not migrated: run `opsbot db upgrade`"
    newer = sorted(applied - known_revisions())
    if newer:
        # A newer release migrated it (a rolling deploy, a rollback of the image): this
        # code cannot upgrade to a revision it does not have.
        return (
            f"database schema at {', '.join(newer)}, newer than this code's migrations "
            f"(it expects {', '.join(sorted(expected))}): run the release that migrated it"
        )
    return (
        f"database schema at {', '.join(sorted(applied))}, expected {', '.join(sorted(expected))}"
        ": run `opsbot db upgrade`"
    )
