"""How late the stored jobs are: the number the alarm on a stalled scheduler watches.

The leader takes a date job out of the store when it starts it, and a retry is
stored for later; a job still in the store past its time means that no
instance is running jobs (no leader, or one whose scheduler is stuck), so no
reminder, escalation, window end or handoff happens.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.scheduler.scheduler import TABLE

_JOBS = sa.table(TABLE, sa.column("next_run_time", sa.Float))
_EARLIEST = sa.select(sa.func.min(_JOBS.c.next_run_time))


def overdue_s(db_session: Session, *, now: datetime) -> float:
    """Seconds the earliest stored job has been due at `now`; 0 when none is due."""
    earliest = db_session.scalar(_EARLIEST)
    if earliest is None:
        return 0.0
    return max(0.0, now.timestamp() - float(earliest))
