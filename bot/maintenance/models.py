"""Maintenance windows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime

ROUTE = "route"  # `pattern` is a route's name
ALARMS = "alarms"  # `pattern` is an alarm-name glob


class MaintenanceWindow(Base):
    """Alarms matching `pattern` between `starts_at` and `ends_at` are not paged.

    `ended_at` is set once, when the window is over (ended early by someone, or by
    the job at `ends_at`): whatever was held and still fires is paged then.
    """

    __tablename__ = "maintenance_windows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # route | alarms
    pattern: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(32))  # a Slack user id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_by: Mapped[str | None] = mapped_column(String(32))  # None: it ran its course
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_maintenance_windows_open", "ended_at", "starts_at"),)

    @property
    def target(self) -> str:
        """The audit target."""
        return f"maintenance:{self.id}"

    def is_active(self, now: datetime) -> bool:
        return self.ended_at is None and self.starts_at <= now < self.ends_at

    def is_planned(self, now: datetime) -> bool:
        return self.ended_at is None and now < self.starts_at
