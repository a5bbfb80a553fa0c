"""What arrived: every SNS message, kept by its MessageId so a redelivery is a no-op;
and the groups alarms that open together are listed in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime

PENDING = "pending"


class ReceivedMessage(Base):
    __tablename__ = "received_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    via: Mapped[str] = mapped_column(String(20))  # https | sqs
    topic_arn: Mapped[str | None] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(20))  # alarm | notice
    subject: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    # What was done; PENDING while it is recorded but not applied yet (bot/alarms/intake.py).
    outcome: Mapped[str] = mapped_column(String(255), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_received_messages_pending",
            "id",
            sqlite_where=text("outcome = 'pending'"),
            postgresql_where=text("outcome = 'pending'"),
        ),
    )


class AlarmGroup(Base):
    """Alarms that opened together on one route and channel, listed in one parent
    message in that channel.

    Routes may share a name and post to different channels (bot/config.py), so a
    group is keyed by both: each route name and channel has at most one open group
    (`closed_at` empty), and an alarm opening there joins it while its last member
    joined within `alarms.group_window_s`.
    """

    __tablename__ = "alarm_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    route_name: Mapped[str] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(80))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "uq_alarm_groups_open_route_channel",
            "route_name",
            "channel",
            unique=True,
            sqlite_where=text("closed_at IS NULL"),
            postgresql_where=text("closed_at IS NULL"),
        ),
    )

    @property
    def message_key(self) -> str:
        return f"alarm_group:{self.id}"


class AlarmGroupMember(Base):
    """An incident listed in a group; `threaded`: its own message is in the group's thread
    (else it was posted in the channel before the group formed)."""

    __tablename__ = "alarm_group_members"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("alarm_groups.id", ondelete="CASCADE"))
    incident_id: Mapped[int] = mapped_column(
        ForeignKey("incidents.id", ondelete="CASCADE"), unique=True
    )
    threaded: Mapped[bool] = mapped_column(Boolean, default=False)
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_alarm_group_members_group_id", "group_id"),)
