"""Scheduled work of deploys: watching rollouts, reminding holders of old locks, and
both put back at start.

A watch job carries a token, its job id: only the one the deployment names
(`watch_job`) runs, so a watch re-created after a crash and an old one never
both poll. Each look schedules the next under a new token. A lock's reminder
has one job id per lock. Both come back at start from what the database keeps
(a crash mid-run, or retries given up, loses a date job), under the id the
deployment or the lock names, so a start replaces a stored job rather than
adding a second one.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import TYPE_CHECKING

from bot.apps.errors import AppError
from bot.deploys import flows, locks, service
from bot.deploys.errors import DeployError
from bot.deploys.models import ACTIVE
from bot.scheduler.registry import JobFunction

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def watch(services: Services, *, deployment_id: int, token: str) -> None:
    with services.sessions() as db_session:
        deployment = service.get(db_session, deployment_id=deployment_id)
        if deployment is None or not deployment.is_active or deployment.watch_job != token:
            return
    try:
        status = flows.observe(services, deployment_id=deployment_id)
    except AppError as exc:  # the environment left the configuration: nothing to watch with
        log.error("stopped watching deployment %s: %r", deployment_id, str(exc))
        return
    except DeployError as exc:
        log.warning("watching deployment %s: %r", deployment_id, str(exc))
        status = "unknown"
    except Exception:
        # Keep watching: a deployment nobody watches holds its lock until someone asks.
        log.exception("watching deployment %s failed", deployment_id)
        status = "unknown"
    if status in ACTIVE or status == "unknown":
        flows.schedule_watch(services, deployment_id=deployment_id)


def lock_reminder(services: Services, *, lock_id: int) -> None:
    locks.remind_lock(services, lock_id=lock_id)


def resume_watches(services: Services) -> int:
    """At start: every deployment still starting or rolling out has its watch job (a lost
    one left it holding the deploy lock, unwatched, until someone asked). Returns how many."""
    with services.sessions() as db_session:
        active = [deployment.id for deployment in service.list_active(db_session)]
    resumed = [i for i in active if flows.resume_watch(services, deployment_id=i)]
    log.info(
        "put back the watch jobs of %d deployment(s) in progress",
        len(resumed),
        extra={"job": flows.WATCH_JOB, "deployments": resumed},
    )
    return len(resumed)


def reschedule_lock_reminders(services: Services) -> int:
    """At start: every manual lock has its reminder job, at its next due time or at once if
    that is past (a lost one never reminded its holder again). Returns how many."""
    now = services.clock.now()
    with services.sessions() as db_session:
        due = {
            held.id: locks.reminder_due(held, services.config.deploys)
            for held in service.manual_locks(db_session)
        }
    for lock_id, at in due.items():
        locks.schedule_reminder(services, lock_id=lock_id, at=max(at, now))
    log.info(
        "put back the reminder jobs of %d manual deploy lock(s)",
        len(due),
        extra={"job": locks.REMINDER_JOB, "locks": list(due)},
    )
    return len(due)


def jobs(services: Services) -> dict[str, JobFunction]:
    """The deploys' jobs by name, bound to `services`."""
    return {
        flows.WATCH_JOB: partial(watch, services),
        locks.REMINDER_JOB: partial(lock_reminder, services),
    }
