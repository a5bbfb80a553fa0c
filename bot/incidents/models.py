"""Incidents and their timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime

OPEN = "open"
RESOLVED = "resolved"


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The PagerDuty dedup_key: stable for the incident, unique per installation.
    dedup_key: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(20))  # alarm | manual | pagerduty
    status: Mapped[str] = mapped_column(String(20), default=OPEN)
    title: Mapped[str] = mapped_column(String(1024))

    alarm_arn: Mapped[str | None] = mapped_column(String(2048))
    alarm_name: Mapped[str | None] = mapped_column(String(255))
    account: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    alarm_state: Mapped[str | None] = mapped_column(String(32))
    # StateChangeTime of the newest transition applied; older ones arrive late.
    state_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    transitions: Mapped[int] = mapped_column(Integer, default=0)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    route_name: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(80))
    severity: Mapped[str] = mapped_column(String(20))
    mention: Mapped[str | None] = mapped_column(String(255))
    routing_key_env: Mapped[str | None] = mapped_column(String(255))
    paged: Mapped[bool] = mapped_column(Boolean, default=False)

    pagerduty_incident_id: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    silenced_until: Mapped[datetime | None] = mapped_column(UTCDateTime())

    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    events: Mapped[list[IncidentEvent]] = relationship(
        back_populates="incident", order_by="IncidentEvent.id", lazy="raise"
    )

    __table_args__ = (
        # One open incident per alarm, whatever the database.
        Index(
            "uq_incidents_open_alarm_arn",
            "alarm_arn",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_incidents_alarm_arn_resolved_at", "alarm_arn", "resolved_at"),
        Index("ix_incidents_status_opened_at", "status", "opened_at"),
    )

    @property
    def message_key(self) -> str:
        return f"incident:{self.id}"

    @property
    def is_open(self) -> bool:
        return self.status == OPEN


class IncidentEvent(Base):
    """One line of an incident's timeline."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(255))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    source_ref: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)

    incident: Mapped[Incident] = relationship(back_populates="events", lazy="raise")

    __table_args__ = (Index("ix_incident_events_incident_id_id", "incident_id", "id"),)
