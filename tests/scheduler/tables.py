"""A table made unavailable for a while through the database itself, not by patching opsbot."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


@contextmanager
def table_gone(engine: sa.Engine, table: str) -> Iterator[None]:
    """`table` renamed away: every statement on it fails (SQLite: OperationalError,
    PostgreSQL: UndefinedTable), as a real outage of that table would; back afterwards."""
    with engine.begin() as connection:
        connection.exec_driver_sql(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"ALTER TABLE {table}_away RENAME TO {table}")
