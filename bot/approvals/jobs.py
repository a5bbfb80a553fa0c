"""Scheduled work of pending actions: expiry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals import flows
from bot.scheduler.registry import job

if TYPE_CHECKING:
    from bot.runtime import Runtime


@job(flows.EXPIRE_JOB)
def expire(runtime: Runtime, *, action_id: int) -> None:
    flows.expire_if_due(runtime, action_id=action_id)
