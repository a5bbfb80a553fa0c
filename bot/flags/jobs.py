"""Scheduled work of flags: watching an AppConfig deployment until it ends.

Each look re-schedules the next with a new job id (APScheduler removes a
finished date job by its id); the job's arguments carry what the messages
need, so no table is kept for it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.apps.errors import AppError
from bot.flags import flows
from bot.flags.errors import FlagError
from bot.scheduler.registry import job

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


@job(flows.WATCH_JOB)
def watch(runtime: Runtime, *, info: dict[str, Any], last: str) -> None:
    try:
        seen = flows.observe(runtime, info=info, last=last)
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
        flows.schedule_watch(runtime, info=info, last=seen)
