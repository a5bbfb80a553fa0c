"""SNS signing certificates fetched before, kept so that a restart need not fetch them again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime


class SnsCertificate(Base):
    __tablename__ = "sns_certificates"

    url: Mapped[str] = mapped_column(String(2048), primary_key=True)
    pem: Mapped[str] = mapped_column(Text)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime())
