"""Scheduled work of flags: watching an AppConfig deployment until it ends.

Each look re-schedules the next with a new job id (APScheduler removes a
finished date job by its id); the job's arguments carry what the messages
need, so no table is kept for it.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.apps.errors import AppError
from bot.flags import flows
from bot.flags.errors import FlagError
from bot.scheduler.registry import JobFunction

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def watch(services: Services, *, info: dict[str, Any], last: str) -> None:
    try:
        seen = flows.observe(services, info=info, last=last)
    except AppError as exc:  # the environment left the configuration
        log.error("stopped watching AppConfig deployment %r: %r", info.get("deployment"), str(exc))
        return
    except FlagError as exc:
        log.warning("watching AppConfig deployment %r: %r", info.get("deployment"), str(exc))
        seen = last
    except Exception:
        log.exception("watching AppConfig deployment %r failed", info.get("deployment"))
        seen = last
    if seen is not None:
        flows.schedule_watch(services, info=info, last=seen)


def jobs(services: Services) -> dict[str, JobFunction]:
    """The flags' jobs by name, bound to `services`."""
    return {flows.WATCH_JOB: partial(watch, services)}
