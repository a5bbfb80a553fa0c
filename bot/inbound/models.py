"""Receipts of inbound deliveries (Slack events, PagerDuty webhooks); work owed behind acks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime

PROCESSING = "processing"
DONE = "done"

SLACK_EVENT = "slack.event"  # Events API event_id
PAGERDUTY_WEBHOOK = "pagerduty.webhook"  # X-Webhook-Id: one delivery and its retries
PAGERDUTY_EVENT = "pagerduty.event"  # event.id: one change, whatever delivered it


class InboundReceipt(Base):
    __tablename__ = "inbound_receipts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=DONE)
    # While PROCESSING: a retry before this is answered as a duplicate; after it,
    # the first attempt is presumed dead and the retry takes over.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("source", "key", name="uq_inbound_receipts_source_key"),)


class AfterAckWork(Base):
    """Work a Slack command or click still owes behind its acknowledgement (bot/after_ack.py).

    Written while the work is owed (in batches: work done within one batch
    interval is never written), deleted when it is done. The owner (one running
    instance) keeps `lease_until` ahead while it lives; a row whose lease ran
    out was left by an instance that died with the work queued.
    """

    __tablename__ = "after_ack_work"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)  # chosen by the instance
    what: Mapped[str] = mapped_column(String(120))  # "/deploy start", never the user's text
    response_url: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(64))
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_after_ack_work_owner", "owner"),
        Index("ix_after_ack_work_lease_until", "lease_until"),
    )
