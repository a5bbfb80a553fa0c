"""Who has opened App Home, and what opsbot last published to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime


class HomeView(Base):
    """One row per person who opened App Home; refreshes go to recent ones only."""

    __tablename__ = "home_views"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A digest of the last view published: an unchanged view is not published again.
    published_state: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_home_views_opened_at", "opened_at"),)
