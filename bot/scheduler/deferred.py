"""Scheduling and cancelling jobs as part of a unit of work: applied right after its commit.

The job store has its own connection, so a job cannot join the caller's
transaction. Domain code records what it wants in the session; the hook that
the composition root installs applies it once the state it depends on is
committed, and forgets it on a rollback (`bot.db.committed` holds the rules, SAVEPOINTs
included). Jobs must still check that state when
they run: a crash between the commit and the hook loses the request, which is
why domain code keeps its own due times and re-schedules from them at start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.db import committed
from bot.scheduler.scheduler import JobScheduler, loggable_ids

log = logging.getLogger(__name__)

PENDING_OPS = "scheduler_after_commit"


@dataclass(frozen=True)
class _Schedule:
    name: str
    at: datetime
    job_id: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Cancel:
    job_id: str


def schedule_after_commit(
    db_session: Session, name: str, *, at: datetime, job_id: str, **kwargs: Any
) -> None:
    """Run job `name` at `at` once this transaction commits (same id: replaced)."""
    committed.note(db_session, PENDING_OPS, _Schedule(name, at, job_id, kwargs))


def cancel_after_commit(db_session: Session, job_id: str) -> None:
    committed.note(db_session, PENDING_OPS, _Cancel(job_id))


def _lost(scheduler: JobScheduler, op: _Schedule, exc: Exception) -> None:
    """A job whose schedule the store did not take: logged and counted as given up."""
    log.error(
        "could not store job %s %s %s due at %s (%s): it runs only if its domain "
        "re-schedules it at start",
        op.name,
        op.job_id,
        loggable_ids(op.kwargs),
        op.at.isoformat(),
        type(exc).__name__,
        exc_info=exc,
        extra={"job": op.name, "job_id": op.job_id},
    )
    scheduler.count_given_up(op.name)


def apply_after_commit(sessions: sessionmaker[Session], scheduler: JobScheduler) -> None:
    """Install the hook on every session from `sessions`."""

    def apply(op: _Schedule | _Cancel) -> None:
        try:
            if isinstance(op, _Schedule):
                scheduler.schedule(op.name, at=op.at, job_id=op.job_id, **op.kwargs)
            else:
                scheduler.cancel(op.job_id)
        except Exception as exc:
            # Not started yet, stopped, or the job store is unreachable: the
            # owner of the due time re-schedules it when the service (re)starts.
            if isinstance(op, _Schedule):
                _lost(scheduler, op, exc)
            else:  # the job runs, finds its state changed and does nothing
                log.warning(
                    "could not cancel job %s in the job store (%s)",
                    op.job_id,
                    type(exc).__name__,
                    exc_info=exc,
                    extra={"job_id": op.job_id},
                )

    committed.on_commit(sessions, PENDING_OPS, apply)
