"""The audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime

ACTOR_LENGTH = 255
TARGET_LENGTH = 512


class AuditRecord(Base):
    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(ACTOR_LENGTH))  # Slack user id, or "cli:<user>"
    action: Mapped[str] = mapped_column(String(80))  # e.g. incident.acknowledge
    target: Mapped[str] = mapped_column(String(TARGET_LENGTH))  # e.g. incident:42, deploy:api/prod
    outcome: Mapped[str] = mapped_column(String(20))  # ok | refused | failed
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    __table_args__ = (
        Index("ix_audit_records_target_at", "target", "at"),
        Index("ix_audit_records_actor_at", "actor", "at"),
    )
