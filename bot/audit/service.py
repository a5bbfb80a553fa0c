"""Recording audit entries; the caller's unit of work commits them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audit.models import AuditRecord


def record(
    db_session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
) -> AuditRecord:
    """Add an audit entry to the current transaction."""
    entry = AuditRecord(
        at=at, actor=actor, action=action, target=target, outcome=outcome, detail=detail or {}
    )
    db_session.add(entry)
    db_session.flush()
    return entry


def for_target(db_session: Session, *, target: str, limit: int = 50) -> list[AuditRecord]:
    """The newest entries about one target, newest first."""
    query = (
        select(AuditRecord)
        .where(AuditRecord.target == target)
        .order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))
