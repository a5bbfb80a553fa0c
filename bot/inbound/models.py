"""Receipts of inbound deliveries (Slack events, PagerDuty webhooks) by their ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, UniqueConstraint
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
