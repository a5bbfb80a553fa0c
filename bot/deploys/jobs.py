"""Scheduled work of deploys: watching rollouts, reminding holders of old locks.

Both jobs re-schedule themselves with a new job id each time (APScheduler
removes a finished date job by its id). A watch job carries a token: only the
one the deployment names runs, so a watch re-created after a crash and an old
one never both poll.
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


def jobs(services: Services) -> dict[str, JobFunction]:
    """The deploys' jobs by name, bound to `services`."""
    return {
        flows.WATCH_JOB: partial(watch, services),
        locks.REMINDER_JOB: partial(lock_reminder, services),
    }
