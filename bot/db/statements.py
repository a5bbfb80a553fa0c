"""Executing bulk UPDATEs whose row count decides what happens next."""

from __future__ import annotations

from typing import Any

from sqlalchemy import CursorResult, Update
from sqlalchemy.orm import Session


def update_rows(db_session: Session, statement: Update) -> int:
    """Run an UPDATE without touching loaded objects; return how many rows it changed."""
    result = db_session.execute(statement.execution_options(synchronize_session=False))
    assert isinstance(result, CursorResult)
    count: Any = result.rowcount
    return int(count)
