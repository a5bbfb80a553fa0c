"""Deliveries waiting to be sent, and the Slack messages they post and update."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime

PENDING = "pending"
SENT = "sent"
DEAD = "dead"
CANCELLED = "cancelled"

SLACK_MESSAGE = "slack.message"  # post once, then update in place
SLACK_REPLY = "slack.reply"  # a threaded reply under a slack.message
SLACK_RESPONSE = "slack.response"  # a reply through a response_url
PAGERDUTY_EVENT = "pagerduty.event"  # Events API v2
PAGERDUTY_REST = "pagerduty.rest"  # REST API v2: a person's (or the bot's) action on an incident

# Kinds by the service they call, whose outage fails or holds them all at once: the
# worker keeps a sender for each family (bot/outbox/worker.py).
FAMILIES: dict[str, str] = {
    SLACK_MESSAGE: "slack",
    SLACK_REPLY: "slack",
    SLACK_RESPONSE: "slack_response",
    PAGERDUTY_EVENT: "pagerduty",
    PAGERDUTY_REST: "pagerduty_rest",
}


def family_of(kind: str) -> str:
    """The family of `kind`; a kind not listed is a family of its own."""
    return FAMILIES.get(kind, kind)


# Lanes: the worker claims the lowest `priority` first, then the oldest.
PERSON = 0  # someone is waiting for it: a click's PagerDuty call, its message update, an answer
BULK = 1  # nobody is watching for this one: a storm's posts, reminders, handoffs
# Bulk that may wait for other bulk: an update of an alarm's message inside its group's
# thread, whose state the group's message (BULK) already shows.
LATER = 2


class Delivery(Base):
    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # What is paced together: a Slack channel, a PagerDuty routing key's variable.
    target: Mapped[str] = mapped_column(String(255))
    # What must go out in order: a Slack message and its thread, one dedup_key.
    order_key: Mapped[str] = mapped_column(String(512))
    # The Slack message this delivery posts, updates or replies under.
    message_key: Mapped[str | None] = mapped_column(String(255))
    # Pending replies with the same fold_key merge into one.
    fold_key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    priority: Mapped[int] = mapped_column(Integer, default=BULK, server_default=text(str(BULK)))
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Optimistic concurrency: coalescing and claiming both bump it.
    version: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime())
    # When it was first due (its not_before when added, or when put back in line after it
    # was abandoned); a retry's backoff leaves it. Its wait counts from here (the late-page
    # watch). None: added by a release without it, whose wait counts as it did there.
    first_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index(
            "ix_deliveries_pending_not_before",
            "not_before",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_deliveries_pending_priority_id",
            "priority",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_deliveries_order_key_status_id", "order_key", "status", "id"),
        Index("ix_deliveries_fold_key_status", "fold_key", "status"),
    )


class SlackMessage(Base):
    """A message the bot owns in Slack, by a stable key (e.g. ``incident:42``)."""

    __tablename__ = "slack_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    channel: Mapped[str] = mapped_column(String(80))  # as configured: an id or a #name
    channel_id: Mapped[str | None] = mapped_column(String(32))  # as Slack answered
    ts: Mapped[str | None] = mapped_column(String(32))
    # The message whose thread this one is posted in (an alarm listed in a group).
    parent_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # its first post
