"""What opsbot last saw of an app environment's ECS service (deploys made outside opsbot)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime


class EcsLook(Base):
    """The latest look at one app environment's service: one row each, updated by every look.

    Shared by every instance, so a storm of alarms on one service reads ECS
    once per freshness period, and every render of an incident message reads
    this row instead of AWS.
    """

    __tablename__ = "ecs_looks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(63))
    env: Mapped[str] = mapped_column(String(63))
    looked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Why ECS could not be read (an AWS error code or an exception name), or None.
    error: Mapped[str | None] = mapped_column(Text)
    # The service's deployments opsbot did not start, as this look and earlier ones saw
    # them (bot/changes/outside.py `_kept`): arn, id (ECS's), task_definition, image, at.
    seen: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)

    __table_args__ = (UniqueConstraint("app", "env", name="uq_ecs_looks_app_env"),)
