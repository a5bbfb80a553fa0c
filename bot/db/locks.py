"""One transaction at a time for a named kind of change, from the lock to its commit or rollback.

A check that reads rows and an insert that relies on what it read are one step only
if nobody else can check in between: `serialize` makes the rest of the transaction
wait for any other transaction that serialized on the same name.

- PostgreSQL: a transaction-level advisory lock keyed by the name, released by the
  commit or rollback (and by the server when the session dies).
- SQLite: every transaction opens with `BEGIN IMMEDIATE` (bot/db/engine.py), which
  takes the database's write lock; beginning the transaction is the lock.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for `name` (PostgreSQL keys advisory locks by bigint)."""
    digest = hashlib.sha256(f"opsbot:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def serialize(db_session: Session, name: str) -> None:
    """Wait until no other transaction holds `name`, then hold it until this one ends."""
    connection = db_session.connection()  # begins the transaction: on SQLite, the lock itself
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})
