"""Deployments (the history) and locks (one deploy at a time, or held on purpose)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime

DEPLOY = "deploy"
ROLLBACK = "rollback"
# A forced new deployment of the running revision, so its tasks read new
# feature flags (SSM flags are read at task start): see bot/deploys/restarts.py.
FLAG_ROLL = "flag-roll"

STARTING = "starting"  # lock taken; the service is being updated
ROLLING_OUT = "rolling_out"  # the service was updated; ECS is rolling it out
STUCK = "stuck"  # rolling out, but nothing moved for too long (still watched)
COMPLETED = "completed"
FAILED = "failed"  # refused by AWS, rolled back by the circuit breaker, or interrupted
SUPERSEDED = "superseded"  # another deployment replaced it before it finished

ACTIVE = (STARTING, ROLLING_OUT, STUCK)

LOCK_DEPLOY = "deploy"  # held by a running deployment
LOCK_MANUAL = "manual"  # held on purpose by a person (/deploy lock)


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(63))
    env: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))  # deploy | rollback | flag-roll
    status: Mapped[str] = mapped_column(String(20), default=STARTING)
    actor: Mapped[str] = mapped_column(String(255))  # Slack user id, or cli:<name>
    approved_by: Mapped[list[str]] = mapped_column(JSONType, default=list)
    tag: Mapped[str | None] = mapped_column(String(300))
    image: Mapped[str] = mapped_column(String(1024))  # <repository uri>@sha256:...
    digest: Mapped[str] = mapped_column(String(100))
    previous_image: Mapped[str | None] = mapped_column(String(1024))
    previous_tag: Mapped[str | None] = mapped_column(String(300))
    previous_task_definition: Mapped[str | None] = mapped_column(String(2048))
    # The revision this deployment rolls out: new for a deploy, restored for a rollback.
    task_definition: Mapped[str | None] = mapped_column(String(2048))
    rollback_of: Mapped[int | None] = mapped_column(Integer)  # the deployment restored
    ecs_deployment_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str | None] = mapped_column(String(80))  # where it is announced
    force_reason: Mapped[str | None] = mapped_column(Text)
    forced: Mapped[list[str]] = mapped_column(JSONType, default=list)  # what --force overrode
    scan: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The rollout as last seen, and the stopped tasks already reported; while it starts,
    # until when its start claims it (and a lost answer's error code); while the watch
    # cannot read ECS, since when and why (bot/deploys/flows.py).
    observed: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    observations: Mapped[int] = mapped_column(Integer, default=0)
    watch_job: Mapped[str | None] = mapped_column(String(191))  # the one watch job that counts
    outcome: Mapped[str | None] = mapped_column(Text)  # the closing line, for people
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())  # service updated
    last_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stuck_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_deployments_app_env_id", "app", "env", "id"),
        Index("ix_deployments_status", "status"),
    )

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"

    @property
    def audit_target(self) -> str:
        return f"deploy:{self.label}"

    @property
    def message_key(self) -> str:
        return f"deployment:{self.id}"

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE


class DeployLock(Base):
    """At most one lock of each kind per app environment (the unique key is the lock)."""

    __tablename__ = "deploy_locks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    app: Mapped[str] = mapped_column(String(63))
    env: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))  # deploy | manual
    holder: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(Text)
    deployment_id: Mapped[int | None] = mapped_column(
        ForeignKey("deployments.id", ondelete="SET NULL")
    )
    acquired_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (UniqueConstraint("app", "env", "kind", name="uq_deploy_locks_app_env_kind"),)

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"
