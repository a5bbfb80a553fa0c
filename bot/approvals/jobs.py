"""Scheduled work of pending actions: expiry."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.approvals import flows
from bot.scheduler.registry import JobFunction

if TYPE_CHECKING:
    from bot.apps.services import Services


def expire(services: Services, *, action_id: int) -> None:
    flows.expire_if_due(services, action_id=action_id)


def jobs(services: Services) -> dict[str, JobFunction]:
    """The approvals' jobs by name, bound to `services`."""
    return {flows.EXPIRE_JOB: partial(expire, services)}
