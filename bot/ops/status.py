"""What `/opsbot status` and `opsbot status` show: one read of opsbot's own state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from bot.observability.metrics import TARGETS
from bot.observability.outbox_gauges import OutboxBacklog
from bot.ops import instances, notices
from bot.outbox import service as outbox

DEAD_SHOWN = 10
# An instance is live while its last heartbeat is younger than this many heartbeats.
LIVE_HEARTBEATS = 3


@dataclass(frozen=True)
class DeadDelivery:
    id: int
    kind: str
    target: str
    error: str
    updated_at: datetime


@dataclass(frozen=True)
class InstanceView:
    id: str
    version: str
    commit: str
    leader: bool
    live: bool
    seen_at: datetime


@dataclass(frozen=True)
class Status:
    version: str
    commit: str
    config_version: str
    slack_auth_ok: bool
    slack_auth_lost_since: datetime | None
    last_slack_ok_at: datetime | None
    last_pagerduty_ok_at: datetime | None
    leader: str | None
    instances: list[InstanceView]
    backlog: list[tuple[str, int, float]]  # (target, pending, oldest waiting seconds)
    dead: list[DeadDelivery]


def _latest(*moments: datetime | None) -> datetime | None:
    known = [m for m in moments if m is not None]
    return max(known) if known else None


def gather(
    db_session: Session,
    *,
    backlog: OutboxBacklog,
    now: datetime,
    version: str,
    commit: str,
    config_version: str,
    heartbeat_s: float,
) -> Status:
    live_since = now - timedelta(seconds=LIVE_HEARTBEATS * heartbeat_s)
    rows = instances.seen(db_session)
    views = [
        InstanceView(
            id=row.id,
            version=row.version,
            commit=row.commit,
            leader=row.leader and row.seen_at >= live_since,
            live=row.seen_at >= live_since,
            seen_at=row.seen_at,
        )
        for row in rows
    ]
    auth = notices.current(db_session, notices.SLACK_AUTH)
    lost_since = auth.opened_at if auth is not None and auth.closed_at is None else None
    dead = [
        DeadDelivery(
            id=row.id,
            kind=row.kind,
            target=row.target,
            error=row.last_error or "",
            updated_at=row.updated_at,
        )
        for row in outbox.dead(db_session, limit=DEAD_SHOWN)
    ]
    return Status(
        version=version,
        commit=commit or "unknown",
        config_version=config_version,
        slack_auth_ok=lost_since is None,
        slack_auth_lost_since=lost_since,
        last_slack_ok_at=_latest(*(r.last_slack_ok_at for r in rows)),
        last_pagerduty_ok_at=_latest(*(r.last_pagerduty_ok_at for r in rows)),
        leader=next((v.id for v in views if v.leader), None),
        instances=views,
        backlog=[(t, backlog.pending(t), backlog.oldest_s(t, now)) for t in TARGETS],
        dead=dead,
    )
