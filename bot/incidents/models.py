"""Incidents and their timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime

OPEN = "open"
RESOLVED = "resolved"

# Where an incident came from.
ALARM = "alarm"
MANUAL = "manual"  # /incident declare
PAGERDUTY = "pagerduty"  # opened in PagerDuty by someone else

# How many superseded PagerDuty incident ids an incident keeps: each needs a
# resolve that reached PagerDuty and a new page, so more is a flapping alarm
# whose oldest pages have long gone quiet.
MAX_SUPERSEDED_IDS = 20


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
    # PagerDuty incidents this one was paged away from (a re-page after PagerDuty's
    # was resolved opens a new one with the same dedup key): their late webhooks
    # must not change this incident. Oldest first, the newest MAX_SUPERSEDED_IDS kept.
    pagerduty_superseded_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    # The PagerDuty service our pages land on, from the first event or answer about
    # the incident our page opened: an incident of another service carrying our
    # dedup key (a subscription covers the whole account) is not ours. Kept across
    # re-pages, which go to the same routing key.
    pagerduty_service_id: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_by: Mapped[str | None] = mapped_column(String(255))
    resolved_by: Mapped[str | None] = mapped_column(String(255))
    silenced_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    silenced_by: Mapped[str | None] = mapped_column(String(255))
    opened_by: Mapped[str | None] = mapped_column(String(255))  # declared or opened in PD by

    # What PagerDuty last told us about its incident (webhooks and REST answers).
    pagerduty_number: Mapped[int | None] = mapped_column(Integer)
    pagerduty_url: Mapped[str | None] = mapped_column(String(1024))
    pagerduty_status: Mapped[str | None] = mapped_column(String(20))
    escalation_level: Mapped[int | None] = mapped_column(Integer)
    priority: Mapped[str | None] = mapped_column(String(80))
    assignees: Mapped[list[str]] = mapped_column(JSONType, default=list)  # as shown in Slack
    # occurred_at of the newest PagerDuty change applied; older webhooks arrive late.
    pagerduty_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Reminders and escalation, copied from the route when the incident opens;
    # *_at is when the next one is due (cleared by an acknowledgement).
    remind_after_min: Mapped[float | None] = mapped_column(Float)
    escalate_after_min: Mapped[float | None] = mapped_column(Float)
    remind_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    escalate_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # Its own Slack channel (bot/incidents/channels.py), when one was started: the id
    # Slack gave it, its name, who asked and since when (a claim, so that a double click
    # makes one channel), the newest timeline event already shown there, and when it is
    # archived (`incident_channels.archive_after_days` after the resolve).
    slack_channel_id: Mapped[str | None] = mapped_column(String(32))
    slack_channel_name: Mapped[str | None] = mapped_column(String(80))
    channel_requested_by: Mapped[str | None] = mapped_column(String(255))
    channel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel_event_id: Mapped[int | None] = mapped_column(Integer)
    channel_archive_after_days: Mapped[float | None] = mapped_column(Float)
    channel_archive_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel_archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

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
        Index("ix_incidents_pagerduty_incident_id", "pagerduty_incident_id"),
        Index("ix_incidents_slack_channel_id", "slack_channel_id"),
    )

    @property
    def message_key(self) -> str:
        return f"incident:{self.id}"

    @property
    def is_open(self) -> bool:
        return self.status == OPEN

    @property
    def target(self) -> str:
        """How the audit trail names it."""
        return f"incident:{self.id}"

    @property
    def channel_key(self) -> str:
        """The key of its summary message in its own channel (bot/outbox)."""
        return f"incident:{self.id}:channel"

    @property
    def has_channel(self) -> bool:
        """Whether its own channel is made and set up (a start that stopped midway is not)."""
        return self.slack_channel_id is not None and self.channel_requested_at is None

    @property
    def has_live_channel(self) -> bool:
        """Whether it has its own channel, not archived: the outbox keeps that in step."""
        return self.has_channel and self.channel_archived_at is None

    @property
    def in_pagerduty(self) -> bool:
        """Whether PagerDuty has (or is about to have) an incident behind this one."""
        return self.paged or self.pagerduty_incident_id is not None


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


class AlarmLastTransition(Base):
    """The newest transition of an alarm that had no incident to keep it on.

    An OK can arrive before the alarm's first ALARM (SNS does not keep order); the
    ALARM that then arrives is older than what was applied, so it must not open an
    incident nobody would ever resolve. Also an OK that found no open incident and
    that its last (resolved) incident did not take: an older ALARM arriving after
    it then opens an incident that this OK resolves. Read while the alarm has no
    open incident.
    """

    __tablename__ = "alarm_last_transitions"

    alarm_arn: Mapped[str] = mapped_column(String(2048), primary_key=True)
    state: Mapped[str] = mapped_column(String(32))
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
