"""The end of a maintenance window, on time: page what it held that still fires.

The job claims the window by its `ended_at` in the same transaction as the
pages it owes and its audit line (`maintenance.end` by opsbot, as an end by hand
is by its requester), so a job that runs twice (a restart re-scheduled it) acts once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from bot.audit import service as audit
from bot.clock import Clock
from bot.maintenance import flows
from bot.maintenance import service as windows
from bot.maintenance.actions import END
from bot.scheduler.registry import JobFunction

log = logging.getLogger(__name__)

GRACE = timedelta(seconds=1)  # APScheduler may call a moment early by our clock


@dataclass(frozen=True)
class MaintenanceJobDeps:
    sessions: sessionmaker[Session]
    clock: Clock


def window_end(deps: MaintenanceJobDeps, *, window_id: int) -> None:
    now = deps.clock.now()
    with deps.sessions() as db_session:
        window = windows.lock(db_session, window_id=window_id)
        if window is None or window.ended_at is not None or window.ends_at > now + GRACE:
            return
        paged = flows.close(db_session, window=window, by=None, now=max(now, window.ends_at))
        audit.record(
            db_session,
            at=now,
            actor="opsbot",
            action=END,
            target=window.target,
            outcome="ok",
            detail={"via": "job", "paged": paged},
        )
        db_session.commit()
    log.info(
        "maintenance window %s over: %s paged",
        window_id,
        paged,
        extra={"window": window_id},
    )


def reschedule(sessions: sessionmaker[Session]) -> None:
    """At start: every window not yet closed has its end job (a crash may have lost one)."""
    with sessions() as db_session:
        for window in windows.unended(db_session):
            flows.schedule_end(db_session, window=window)
        db_session.commit()


def jobs(deps: MaintenanceJobDeps) -> dict[str, JobFunction]:
    return {flows.END_JOB: partial(window_end, deps)}
