"""Dropping the throwaway PostgreSQL databases of tests and benchmarks."""

from __future__ import annotations

import sqlalchemy as sa

# PostgreSQL's refusal when WITH (FORCE) meets a process it may not end.
NOT_YOURS = "must be a member of the role whose process is being terminated"


def drop_database(connection: sa.Connection, name: str) -> None:
    """DROP DATABASE `name` (if it exists), ending the sessions still in it.

    WITH (FORCE) refuses to end an autovacuum worker (a process of no role),
    which a database written to a moment ago may have: then this ends the role's
    own sessions and drops it plainly, which asks the worker to stop and waits.
    `connection` is in autocommit, on another database.
    """
    try:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except sa.exc.ProgrammingError as exc:
        if NOT_YOURS not in str(exc):
            raise
        connection.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = :name AND usename = current_user AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
