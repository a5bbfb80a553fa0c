"""The Slack user to PagerDuty user mapping."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime


class PagerDutyUserLink(Base):
    """One Slack user's PagerDuty user: found by email (a cache) or linked by hand (kept)."""

    __tablename__ = "pagerduty_user_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slack_user_id: Mapped[str] = mapped_column(String(32), unique=True)
    pagerduty_user_id: Mapped[str] = mapped_column(String(32))
    pagerduty_email: Mapped[str] = mapped_column(String(320))
    pagerduty_name: Mapped[str] = mapped_column(String(255))
    # True: set with `/opsbot link-pagerduty`; it wins over the email lookup and never
    # expires, but names nobody while its Slack account is deactivated.
    linked: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the lookup was made, or the link made or last found to name an active account.
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_pagerduty_user_links_pagerduty_user_id", "pagerduty_user_id"),)
