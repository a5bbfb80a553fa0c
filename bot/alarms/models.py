"""What arrived: every SNS message, kept by its MessageId so a redelivery is a no-op."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base
from bot.db.types import UTCDateTime


class ReceivedMessage(Base):
    __tablename__ = "received_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    via: Mapped[str] = mapped_column(String(20))  # https | sqs
    topic_arn: Mapped[str | None] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(20))  # alarm | notice
    subject: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(255), default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
