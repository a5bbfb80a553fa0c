"""Scheduled work of deploys: watching rollouts, reminding holders of old locks.

Both jobs re-schedule themselves with a new job id each time (APScheduler
removes a finished date job by its id). A watch job carries a token: only the
one the deployment names runs, so a watch re-created after a crash and an old
one never both poll.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.apps.errors import AppError
from bot.deploys import flows, locks, service
from bot.deploys.errors import DeployError
from bot.deploys.models import ACTIVE
from bot.scheduler.registry import job

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)


@job(flows.WATCH_JOB)
def watch(runtime: Runtime, *, deployment_id: int, token: str) -> None:
    with runtime.sessions() as db_session:
        deployment = service.get(db_session, deployment_id=deployment_id)
        if deployment is None or not deployment.is_active or deployment.watch_job != token:
            return
    try:
        status = flows.observe(runtime, deployment_id=deployment_id)
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
        flows.schedule_watch(runtime, deployment_id=deployment_id)


@job(locks.REMINDER_JOB)
def lock_reminder(runtime: Runtime, *, lock_id: int) -> None:
    locks.remind_lock(runtime, lock_id=lock_id)
