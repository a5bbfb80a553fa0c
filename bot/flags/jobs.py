"""Scheduled work of flags: watching an AppConfig deployment until it ends.

Each look re-schedules the next with a new job id (APScheduler removes a
finished date job by its id); the job's arguments carry what the messages
need, so no table is kept for it. APScheduler removes a date job when it hands
it to a worker, so a process that dies in a look (or a job store that failed
when the first look was scheduled) loses the watch: `resume_watches`, at start,
watches again each deployment whose change the audit records and whose end it
does not. Before that it has each AppConfig change settled whose intent (committed
before StartDeployment) no outcome line names: the process died, or its
database failed, after AppConfig started the deployment (or before it did).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.apps.errors import AppError
from bot.flags import flows
from bot.flags.errors import FlagError, FlagRefused
from bot.scheduler.registry import JobFunction

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def watch(services: Services, *, info: dict[str, Any], last: str) -> None:
    try:
        seen = flows.observe(services, info=info, last=last)
        info = flows.readable_again(info)
    except AppError as exc:  # the environment left the configuration
        log.error("stopped watching AppConfig deployment %r: %r", info.get("deployment"), str(exc))
        return
    except FlagError as exc:
        log.warning("watching AppConfig deployment %r: %r", info.get("deployment"), str(exc))
        info = flows.unreadable(services, info=info, error=exc)
        seen = last
    except Exception:
        log.exception("watching AppConfig deployment %r failed", info.get("deployment"))
        seen = last
    if seen is not None:
        flows.schedule_watch(services, info=info, last=seen)


def settle(services: Services, *, intent_id: int) -> None:
    """Settle one change's intent once its grace is over; again later while AWS cannot say.

    An environment that left the configuration, or keeps its flags elsewhere now,
    is not tried again: no later look can say more. Its intent stays unsettled,
    and each start tries it once more (its configuration may come back).
    """
    try:
        if flows.settle_intent(services, intent_id=intent_id) != flows.WAITING:
            return
    except (AppError, FlagRefused) as exc:
        log.error(
            "cannot settle the flag change of intent %s (not tried again before the next "
            "start): %s",
            intent_id,
            exc,
            extra={"intent": intent_id},
        )
        return
    except FlagError as exc:
        log.warning(
            "cannot settle the flag change of intent %s yet: %s",
            intent_id,
            exc,
            extra={"intent": intent_id},
        )
    services.scheduler.schedule(
        flows.SETTLE_JOB,
        at=services.clock.now() + timedelta(seconds=services.config.deploys.starting_grace_s),
        job_id=f"flag-settle-{intent_id}",
        intent_id=intent_id,
    )


def jobs(services: Services) -> dict[str, JobFunction]:
    """The flags' jobs by name, bound to `services`."""
    return {flows.WATCH_JOB: partial(watch, services), flows.SETTLE_JOB: partial(settle, services)}


def resume_watches(services: Services) -> int:
    """At start: watch again each AppConfig deployment whose watch was lost; how many.

    Changes whose outcome never committed get a `flags.settle` job: the ones
    that started are recorded, announced and watched from there.
    """
    unsettled = flows.settle_intents(services)
    if unsettled:
        log.warning("%d AppConfig flag change(s) left unrecorded: settling them", unsettled)
    pending = flows.watched_deployments([job_id for job_id, _ in services.scheduler.pending()])
    resumed = 0
    for info in flows.unwatched_deployments(services):
        label, number = str(info["label"]), int(info["deployment"])
        if (label, number) in pending or (None, number) in pending:
            continue  # its next look is stored
        # One id for every instance starting at once: the job is stored once.
        job_id = flows.watch_job_id(info, suffix="resumed")
        flows.schedule_watch(services, info=info, last="", job_id=job_id)
        log.warning("resumed the lost watch of AppConfig deployment %s of %s", number, label)
        resumed += 1
    return resumed
