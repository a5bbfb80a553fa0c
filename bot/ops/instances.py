"""Who runs: this process's identity, and each instance's heartbeat in `ops_instances`."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import metadata

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.ops.models import InstanceSeen

# An instance that has not reported for a day is forgotten.
FORGET_AFTER = timedelta(days=1)


def package_version() -> str:
    try:
        return metadata.version("opsbot")
    except metadata.PackageNotFoundError:
        return "unknown"


def new_instance_id() -> str:
    """The host (an ECS task's private DNS name), then the process id and a random part.

    The random part tells apart two runtimes of one process (tests) and a
    restarted container whose process id is 1 again.
    """
    return f"{socket.gethostname()[:60]}:{os.getpid()}-{secrets.token_hex(3)}"


def clock_offset_s(db_session: Session, now: Callable[[], datetime]) -> float | None:
    """How far this instance's clock (`now`) is ahead of the database's, in seconds;
    None on SQLite, whose instances share one host's clock.

    Leases are written by one instance's clock and judged by another's: two
    instances apart by half a lease send one delivery twice. The database's
    clock is the one reference every instance reads; the read's own time is
    halved out.
    """
    if db_session.get_bind().dialect.name != "postgresql":
        return None
    db_session.connection()  # a wait for the pool's connection is not the clock's
    before = now()
    database: datetime | None = db_session.scalar(select(func.clock_timestamp()))
    after = now()
    if database is None:
        return None
    middle = before + (after - before) / 2
    return (middle - database).total_seconds()


def heartbeat(
    db_session: Session,
    *,
    instance_id: str,
    version: str,
    commit: str,
    config_version: str,
    leader: bool,
    slack_auth_ok: bool,
    last_slack_ok_at: datetime | None,
    last_pagerduty_ok_at: datetime | None,
    started_at: datetime,
    now: datetime,
) -> None:
    """Record that this instance runs, as of `now`; forget instances long gone."""
    row = db_session.get(InstanceSeen, instance_id)
    if row is None:
        row = InstanceSeen(
            id=instance_id, host=instance_id.rsplit(":", 1)[0], started_at=started_at
        )
        db_session.add(row)
    row.version = version[:64]
    row.commit = commit[:64]
    row.config_version = config_version[:80]
    row.leader = leader
    row.slack_auth_ok = slack_auth_ok
    row.last_slack_ok_at = last_slack_ok_at or row.last_slack_ok_at
    row.last_pagerduty_ok_at = last_pagerduty_ok_at or row.last_pagerduty_ok_at
    row.seen_at = now
    db_session.execute(delete(InstanceSeen).where(InstanceSeen.seen_at < now - FORGET_AFTER))


def seen(db_session: Session) -> list[InstanceSeen]:
    return list(db_session.scalars(select(InstanceSeen).order_by(InstanceSeen.seen_at.desc())))
