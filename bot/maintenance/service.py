"""Reading and writing maintenance windows; callers own the transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from fnmatch import fnmatchcase

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bot.db import locks
from bot.incidents.models import ALARM, OPEN, Incident
from bot.maintenance.models import ROUTE, MaintenanceWindow

# The ends of windows, one at a time: an end passes over an alarm another window in force
# still holds (that window's end pages it), so it must see any other end committed.
CLOSE = "maintenance.close"


def matches(window: MaintenanceWindow, *, route_name: str | None, alarm_name: str | None) -> bool:
    """Whether an alarm of `alarm_name` on route `route_name` falls under the window."""
    if window.kind == ROUTE:
        return route_name == window.pattern
    return alarm_name is not None and fnmatchcase(alarm_name, window.pattern)


def covers(window: MaintenanceWindow, incident: Incident) -> bool:
    return incident.source == ALARM and matches(
        window, route_name=incident.route_name, alarm_name=incident.alarm_name
    )


def active(db_session: Session, *, now: datetime) -> list[MaintenanceWindow]:
    """Windows in force at `now`, oldest first."""
    query = (
        select(MaintenanceWindow)
        .where(
            MaintenanceWindow.ended_at.is_(None),
            MaintenanceWindow.starts_at <= now,
            MaintenanceWindow.ends_at > now,
        )
        .order_by(MaintenanceWindow.id)
    )
    return list(db_session.scalars(query))


def active_for(
    db_session: Session, *, incident: Incident, now: datetime, hold: bool = False
) -> MaintenanceWindow | None:
    """The first window in force that covers `incident`, or None.

    `hold`: the caller holds a page by it, so that window (and no other) is
    share-locked until the hold commits. Its end (`lock`, then `close`) then waits
    for that commit and pages what was held; or, ending first, it is waited for and
    found ended. Unlocked, a window could end between this read and the hold's
    commit, and its end would never see the page held by it.
    """
    if incident.source != ALARM:
        return None
    for window in active(db_session, now=now):
        if not covers(window, incident):
            continue
        if not hold:
            return window
        locked = db_session.scalars(
            select(MaintenanceWindow)
            .where(MaintenanceWindow.id == window.id, MaintenanceWindow.ended_at.is_(None))
            .with_for_update(read=True)
            .execution_options(populate_existing=True)
        ).first()
        if locked is not None:
            return locked
    return None


def current_and_planned(db_session: Session, *, limit: int = 50) -> list[MaintenanceWindow]:
    """Windows not closed yet, soonest start first: in force, planned, and overdue (past
    their end, not handled yet by their end job: the alarms they held stay unpaged until
    their end, by the job or by hand, pages them)."""
    query = (
        select(MaintenanceWindow)
        .where(MaintenanceWindow.ended_at.is_(None))
        .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)
        .limit(limit)
    )
    return list(db_session.scalars(query))


def count_not_closed(db_session: Session) -> int:
    """How many windows `current_and_planned` has, whatever its limit."""
    query = select(func.count()).where(MaintenanceWindow.ended_at.is_(None))
    return int(db_session.scalar(query) or 0)


def get(db_session: Session, *, window_id: int) -> MaintenanceWindow | None:
    return db_session.get(MaintenanceWindow, window_id)


def lock(db_session: Session, *, window_id: int) -> MaintenanceWindow | None:
    """The window, locked to be ended (bot/maintenance/flows.py `close`): once no other
    window's end is under way (`CLOSE`), then its row.

    `CLOSE` comes first, and the ends (the end job, `MaintenanceWindows.end`) lock their
    window first in their transaction: an end waiting for `CLOSE` holds nothing another
    transaction may wait for, so it adds no deadlock to the window's row lock, the share
    lock of a page it holds, or the incidents' locks.
    """
    locks.serialize(db_session, CLOSE)
    query = select(MaintenanceWindow).where(MaintenanceWindow.id == window_id).with_for_update()
    return db_session.scalars(query).first()


def create(
    db_session: Session,
    *,
    kind: str,
    pattern: str,
    reason: str,
    created_by: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> MaintenanceWindow:
    window = MaintenanceWindow(
        kind=kind,
        pattern=pattern,
        reason=reason,
        created_by=created_by,
        created_at=now,
        starts_at=starts_at,
        ends_at=ends_at,
        updated_at=now,
    )
    db_session.add(window)
    db_session.flush()
    return window


def chained(
    db_session: Session,
    *,
    shares: Callable[[MaintenanceWindow], bool],
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> list[MaintenanceWindow]:
    """The windows not over yet that may hold an alarm with the new one (`shares`) and run
    on into `starts_at`..`ends_at` (overlap or touch it, or touch one that does): with it,
    they may hold that alarm in one run. Soonest first.
    """
    query = (
        select(MaintenanceWindow)
        .where(MaintenanceWindow.ended_at.is_(None), MaintenanceWindow.ends_at > now)
        .order_by(MaintenanceWindow.starts_at, MaintenanceWindow.id)
    )
    rest = [w for w in db_session.scalars(query) if shares(w)]
    chain: list[MaintenanceWindow] = []
    grew = True
    while grew:
        touching = [w for w in rest if w.starts_at <= ends_at and w.ends_at >= starts_at]
        grew = bool(touching)
        for window in touching:
            rest.remove(window)
            chain.append(window)
            starts_at, ends_at = min(starts_at, window.starts_at), max(ends_at, window.ends_at)
    return sorted(chain, key=lambda w: (w.starts_at, w.id))


def recorded_names(db_session: Session, *, route_name: str, since: datetime) -> frozenset[str]:
    """The alarm names of the route's incidents a window may still hold: the open ones, and
    those resolved since `since` (an ALARM may reopen them). An incident keeps the route it
    was opened on, whatever the routes say now.
    """
    query = (
        select(Incident.alarm_name)
        .where(
            Incident.source == ALARM,
            Incident.route_name == route_name,
            Incident.alarm_name.is_not(None),
            or_(Incident.status == OPEN, Incident.resolved_at >= since),
        )
        .distinct()
    )
    return frozenset(name for name in db_session.scalars(query) if name is not None)


def unended(db_session: Session) -> list[MaintenanceWindow]:
    """Every window whose end has not been handled yet (for rescheduling at start)."""
    query = select(MaintenanceWindow).where(MaintenanceWindow.ended_at.is_(None))
    return list(db_session.scalars(query))


def firing_unpaged_candidates(db_session: Session) -> list[Incident]:
    """Open alarm incidents in ALARM that page through a routing key."""
    query = (
        select(Incident)
        .where(
            Incident.status == "open",
            Incident.source == ALARM,
            Incident.alarm_state == "ALARM",
            Incident.routing_key_env.is_not(None),
        )
        .order_by(Incident.id)
    )
    return list(db_session.scalars(query))
