"""Pending actions: what was asked, by whom, and who has clicked what."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from bot.db.base import Base, JSONType
from bot.db.types import UTCDateTime

PENDING = "pending"  # waiting for clicks
EXECUTING = "executing"  # every click is in; the kind is running it
DONE = "done"
FAILED = "failed"  # it ran and did not succeed (or was refused when it ran)
CANCELLED = "cancelled"
EXPIRED = "expired"

FINAL = (DONE, FAILED, CANCELLED, EXPIRED)

# The result of a run whose process stopped (its claim lapsed): a presumption, which
# the run's own result replaces should it end after all (see flows.execute).
INTERRUPTED = "Interrupted: the bot stopped while running it. Check the state and ask again."


class PendingAction(Base):
    __tablename__ = "pending_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))  # which registered kind runs it
    target: Mapped[str] = mapped_column(String(512))  # as audit records name it: deploy:api/prod
    summary: Mapped[str] = mapped_column(String(1000))  # one line a person reads
    details: Mapped[list[str]] = mapped_column(JSONType, default=list)  # mrkdwn lines
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # for the kind
    requested_by: Mapped[str] = mapped_column(String(255))  # a Slack user id (service.create)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(String(80))  # where the confirmation is posted
    # The requester's own "yes, do it" click (protected environments).
    needs_confirmation: Mapped[bool] = mapped_column(Boolean, default=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(255))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Clicks needed from people other than the requester (two-person rule: 1).
    required_approvals: Mapped[int] = mapped_column(Integer, default=0)
    approvals: Mapped[list[dict[str, str]]] = mapped_column(JSONType, default=list)
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    decided_by: Mapped[str | None] = mapped_column(String(255))  # the last click, or the cancel
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Pending: when clicks stop counting. Executing: until when the run holds its claim
    # (its lease, renewed by the process running it); a claim that lapses means that
    # process is gone, and the expiry job marks the action interrupted.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    result: Mapped[str | None] = mapped_column(Text)  # what came of it, for people

    __table_args__ = (Index("ix_pending_actions_status_expires_at", "status", "expires_at"),)

    @property
    def message_key(self) -> str:
        return f"approval:{self.id}"

    @property
    def approvers(self) -> list[str]:
        return [str(a["user"]) for a in self.approvals or []]

    @property
    def is_pending(self) -> bool:
        return self.status == PENDING

    @property
    def interrupted(self) -> bool:
        """Marked failed because its run's claim lapsed, not by the run itself."""
        return self.status == FAILED and self.result == INTERRUPTED

    @property
    def confirmation_missing(self) -> bool:
        return self.needs_confirmation and self.confirmed_by is None

    @property
    def approvals_missing(self) -> int:
        return max(0, self.required_approvals - len(self.approvals or []))

    @property
    def ready(self) -> bool:
        return not self.confirmation_missing and self.approvals_missing == 0
