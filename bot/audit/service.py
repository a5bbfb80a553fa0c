"""Recording audit entries; the caller's unit of work commits them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.audit.models import ACTOR_LENGTH, TARGET_LENGTH, AuditRecord


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
    """Add an audit entry to the current transaction.

    A target or actor longer than its column (a typed app name of 600 characters) is
    cut to fit, its whole text kept in the detail: PostgreSQL would refuse the row,
    and a refusal would leave no line at all.
    """
    detail = dict(detail or {})
    fitted = {}
    for name, value, length in (("actor", actor, ACTOR_LENGTH), ("target", target, TARGET_LENGTH)):
        if len(value) > length:
            detail[f"whole_{name}"] = value
            value = value[: length - 1] + "…"
        fitted[name] = value
    entry = AuditRecord(
        at=at,
        actor=fitted["actor"],
        action=action,
        target=fitted["target"],
        outcome=outcome,
        detail=detail,
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
