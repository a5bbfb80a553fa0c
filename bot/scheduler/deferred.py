"""Scheduling and cancelling jobs as part of a unit of work: applied right after its commit.

The job store has its own connection, so a job cannot join the caller's
transaction. Domain code records what it wants in the session; the hook that
the composition root installs applies it once the state it depends on is
committed, and forgets it on a rollback. Jobs must still check that state when
they run: a crash between the commit and the hook loses the request, which is
why domain code keeps its own due times and re-schedules from them at start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bot.scheduler.scheduler import JobScheduler

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


def _ops(db_session: Session) -> list[_Schedule | _Cancel]:
    ops: list[_Schedule | _Cancel] = db_session.info.setdefault(PENDING_OPS, [])
    return ops


def schedule_after_commit(
    db_session: Session, name: str, *, at: datetime, job_id: str, **kwargs: Any
) -> None:
    """Run job `name` at `at` once this transaction commits (same id: replaced)."""
    _ops(db_session).append(_Schedule(name, at, job_id, kwargs))


def cancel_after_commit(db_session: Session, job_id: str) -> None:
    _ops(db_session).append(_Cancel(job_id))


def apply_after_commit(sessions: sessionmaker[Session], scheduler: JobScheduler) -> None:
    """Install the hook on every session from `sessions`."""

    def after_commit(db_session: Session) -> None:
        for op in db_session.info.pop(PENDING_OPS, []):
            try:
                if isinstance(op, _Schedule):
                    scheduler.schedule(op.name, at=op.at, job_id=op.job_id, **op.kwargs)
                else:
                    scheduler.cancel(op.job_id)
            except Exception:
                # Not started yet, or the job store is unreachable: the owner of
                # the due time re-schedules it when the service (re)starts.
                log.warning("could not apply %s to the job store", op, exc_info=True)

    def after_rollback(db_session: Session) -> None:
        db_session.info.pop(PENDING_OPS, None)

    event.listen(sessions, "after_commit", after_commit)

    def after_soft_rollback(db_session: Session, transaction: Any) -> None:
        if not transaction.nested:  # a savepoint rolling back keeps the outer work
            after_rollback(db_session)

    event.listen(sessions, "after_soft_rollback", after_soft_rollback)
