"""Scheduled work of the changes section: looking at ECS for deploys made outside opsbot,
telling an undo lost whose process never reported, and both put back at start."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from bot.adapters.aws import AwsClients
from bot.apps.errors import AppError
from bot.apps.registry import get_target_or_raise
from bot.changes import flows, outside
from bot.changes import service as changes
from bot.clock import Clock
from bot.config import Config
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.observability.metrics import Metrics
from bot.scheduler.registry import JobFunction

log = logging.getLogger(__name__)

# Undo events older than this are not looked at for a lost-check at start.
UNDO_RESUME_WINDOW = timedelta(days=7)


@dataclass(frozen=True)
class LookDeps:
    """What the changes' jobs work with (built by the composition root)."""

    config: Config
    clock: Clock
    sessions: sessionmaker[Session]
    aws: AwsClients
    metrics: Metrics


def look_at_ecs(deps: LookDeps, *, incident_id: int) -> None:
    """Look at the ECS service of the incident's app environment, then re-render its message."""
    with deps.sessions() as db_session:
        incident = incidents.get(db_session, incident_id=incident_id)
        if incident is None or not incident.is_open:
            return
        snap = incident.snapshot or {}
        app, env = str(snap.get("app") or ""), str(snap.get("env") or "")
        alarm_at = changes.alarm_time(db_session, incident=incident)
    try:
        target = get_target_or_raise(deps.config, app=app, env=env)
    except AppError:  # the environment left the configuration since the alarm
        log.info("incident %s: %s/%s is no longer configured", incident_id, app, env)
        return
    outside.look(
        sessions=deps.sessions,
        aws=deps.aws,
        app=app,
        env=env,
        settings=target.settings,
        alarm_at=alarm_at,
        now=deps.clock.now(),
        count=deps.metrics.ecs_look,
    )
    with deps.sessions() as db_session:
        locked = incidents.lock(db_session, incident_id=incident_id)
        if locked is None:
            return
        incident_flows.sync_message(db_session, incident=locked, now=deps.clock.now())
        db_session.commit()


def undo_lost(deps: LookDeps, *, event_id: int) -> None:
    """An undo still running RUNNING_FOR_AT_MOST after its click is told lost."""
    flows.mark_lost(deps.sessions, event_id=event_id, now=deps.clock.now())


def reschedule(sessions: sessionmaker[Session], clock: Clock) -> int:
    """At start: every open incident whose message still waits for its look at ECS has its
    look job, due at once (a lost one left the message "looking" for good); every undo
    still running has the job that tells it lost (a lost one left it running for good).
    Returns how many looks."""
    with sessions() as db_session:
        waiting = flows.waiting_for_a_look(db_session)
        for incident in waiting:
            flows.schedule_look(db_session, incident=incident, now=clock.now())
        ids = [incident.id for incident in waiting]
        running = flows.running_undo_events(db_session, since=clock.now() - UNDO_RESUME_WINDOW)
        for event in running:
            flows.schedule_lost_check(db_session, event=event)
        db_session.commit()  # the jobs are stored after the commit (bot/scheduler/deferred.py)
    log.info(
        "put back the ECS look jobs of %d open incident(s)",
        len(ids),
        extra={"job": flows.LOOK_JOB, "incidents": ids},
    )
    if running:
        log.info(
            "put back the lost-checks of %d undo(s) still running",
            len(running),
            extra={"job": flows.LOST_JOB, "events": [event.id for event in running]},
        )
    return len(ids)


def jobs(deps: LookDeps) -> dict[str, JobFunction]:
    """The changes' jobs by name, bound to `deps`."""
    return {flows.LOOK_JOB: partial(look_at_ecs, deps), flows.LOST_JOB: partial(undo_lost, deps)}
