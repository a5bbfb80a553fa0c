"""Scheduled work of pending actions: expiry, and its jobs put back at start."""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from bot.approvals import flows
from bot.approvals import service as approvals
from bot.scheduler.registry import JobFunction

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def expire(services: Services, *, action_id: int) -> None:
    flows.expire_if_due(services, action_id=action_id)


def reschedule(services: Services) -> int:
    """At start: every open action has its expiry job (a crash or a job given up may have
    lost one, and a request without one would stay open forever). Returns how many."""
    with services.sessions() as db_session:
        open_actions = approvals.list_open(db_session)
    for action in open_actions:
        flows.schedule_expiry(services, action=action)
    if open_actions:
        log.info(
            "put back the expiry jobs of %d open request(s)",
            len(open_actions),
            extra={"actions": [action.id for action in open_actions]},
        )
    return len(open_actions)


def jobs(services: Services) -> dict[str, JobFunction]:
    """The approvals' jobs by name, bound to `services`."""
    return {flows.EXPIRE_JOB: partial(expire, services)}
