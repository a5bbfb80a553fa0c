"""The instances that run, and the episodes of opsbot's own failures announced to operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime


class InstanceSeen(Base):
    """One running opsbot process, as it last said (every heartbeat)."""

    __tablename__ = "ops_instances"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(64))
    commit: Mapped[str] = mapped_column(String(64))
    config_version: Mapped[str] = mapped_column(String(80))
    leader: Mapped[bool] = mapped_column(Boolean, default=False)
    slack_auth_ok: Mapped[bool] = mapped_column(Boolean, default=True)
    # The last Slack call and PagerDuty event this instance saw succeed.
    last_slack_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_pagerduty_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OpsNotice(Base):
    """The current (or last) episode of one failure condition, so it is announced once.

    `key` names the condition (`dead_deliveries`, `slack_auth`, `late_page`); an
    episode opens at its first occurrence and closes when it is over (a quiet
    period, a successful call, no late page any more); the next one is new.
    """

    __tablename__ = "ops_notices"

    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    episode: Mapped[int] = mapped_column(Integer, default=0)
    count: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
