"""Who opened App Home when, and what the home shows: read from opsbot's own tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.audit.models import AuditRecord
from bot.db.statements import update_rows
from bot.deploys.models import Deployment
from bot.home.models import HomeView
from bot.incidents.models import OPEN, Incident
from bot.maintenance.models import MaintenanceWindow
from bot.outbox.models import SlackMessage

FLAG_CHANGE = "flag.change"  # bot/flags/flows.py audits every change under this action
FROM_HOME = "home"  # the `via` of a click on a Home tab (no response_url to answer it)
FAILED = "failed"  # an audit outcome: allowed, but what it asked of PagerDuty or AWS failed
NOT_DONE = ("refused", FAILED)


def click_via(body: dict[str, Any]) -> str:
    """The `via` of a button click's payload: `home` from a Home tab, else `button`."""
    view = body.get("view")
    return FROM_HOME if isinstance(view, dict) and view.get("type") == "home" else "button"


def opened(db_session: Session, *, user_id: str, now: datetime) -> None:
    """Note that `user_id` opened App Home now."""
    dialect = postgresql if db_session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(HomeView).values(user_id=user_id, opened_at=now)
    db_session.execute(
        statement.on_conflict_do_update(index_elements=["user_id"], set_={"opened_at": now})
    )


def published(db_session: Session, *, user_id: str, state: str, now: datetime) -> None:
    update_rows(
        db_session,
        update(HomeView)
        .where(HomeView.user_id == user_id)
        .values(published_at=now, published_state=state),
    )


def last_state(db_session: Session, *, user_id: str) -> str | None:
    return db_session.scalar(select(HomeView.published_state).where(HomeView.user_id == user_id))


def recent_viewers(db_session: Session, *, since: datetime, limit: int) -> list[str]:
    """Who opened Home since `since`, most recent first."""
    query = (
        select(HomeView.user_id)
        .where(HomeView.opened_at >= since)
        .order_by(HomeView.opened_at.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))


def open_incidents(db_session: Session, *, limit: int) -> list[Incident]:
    query = select(Incident).where(Incident.status == OPEN).order_by(Incident.id.desc())
    return list(db_session.scalars(query.limit(limit)))


def messages_of(db_session: Session, *, keys: list[str]) -> dict[str, SlackMessage]:
    if not keys:
        return {}
    rows = db_session.scalars(select(SlackMessage).where(SlackMessage.key.in_(keys)))
    return {row.key: row for row in rows}


def deploys_since(db_session: Session, *, since: datetime, limit: int) -> list[Deployment]:
    query = (
        select(Deployment)
        .where(Deployment.created_at >= since)
        .order_by(Deployment.created_at.desc(), Deployment.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))


def flag_changes_since(db_session: Session, *, since: datetime, limit: int) -> list[AuditRecord]:
    query = (
        select(AuditRecord)
        .where(
            AuditRecord.action == FLAG_CHANGE,
            AuditRecord.outcome == "ok",
            AuditRecord.at >= since,
        )
        .order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))


def announced_in(db_session: Session, records: list[AuditRecord]) -> dict[int, str | None]:
    """Where each flag change (`flag.change` line) was announced, by its id; None: nowhere.

    An AppConfig change keeps its channel in its line; an SSM change is announced
    by the restart it asked for (`deployment`: the deployment's id, its channel).
    A line that says neither was announced to its actor alone.
    """
    where: dict[int, str | None] = {}
    restarts: dict[int, int] = {}  # audit line id -> the deployment announcing it
    for record in records:
        detail = record.detail or {}
        where[record.id] = None
        if "channel" in detail:
            channel = detail["channel"]
            where[record.id] = str(channel) if channel else None
        elif "parameter_version" in detail and isinstance(detail.get("deployment"), int):
            restarts[record.id] = detail["deployment"]
    if restarts:
        query = select(Deployment.id, Deployment.channel).where(
            Deployment.id.in_(set(restarts.values()))
        )
        channels = {row.id: row.channel for row in db_session.execute(query)}
        for record_id, deployment_id in restarts.items():
            where[record_id] = channels.get(deployment_id)
    return where


def not_done_from_home(
    db_session: Session, *, user_id: str, since: datetime, limit: int
) -> list[AuditRecord]:
    """`user_id`'s clicks on Home refused, or failed later (PagerDuty said no), since `since`.

    Newest first: a click on Home has no response_url, so Home is its answer.
    """
    query = (
        select(AuditRecord)
        .where(
            AuditRecord.actor == user_id,
            AuditRecord.outcome.in_(NOT_DONE),
            AuditRecord.at >= since,
        )
        .order_by(AuditRecord.at.desc(), AuditRecord.id.desc())
        .limit(limit * 4)  # the actor's other refusals were answered where they were asked
    )
    rows = db_session.scalars(query)
    return [r for r in rows if (r.detail or {}).get("via") == FROM_HOME][:limit]


def fingerprint(db_session: Session, *, since: datetime, now: datetime) -> str:
    """What changes whenever anything Home shows changes (cheap: a few aggregates)."""
    incidents = db_session.execute(
        select(func.count(), func.max(Incident.updated_at)).where(Incident.status == OPEN)
    ).one()
    last_incident = db_session.scalar(select(func.max(Incident.updated_at)))
    deploys = db_session.execute(
        select(
            func.count(),
            func.max(Deployment.id),
            func.max(Deployment.started_at),
            func.max(Deployment.finished_at),
        ).where(Deployment.created_at >= since)
    ).one()
    # Flag changes are listed on Home, and a failure may be a Home click's only answer.
    flags, failures = db_session.execute(
        select(
            func.max(case((AuditRecord.action == FLAG_CHANGE, AuditRecord.id))),
            func.max(case((AuditRecord.outcome == FAILED, AuditRecord.id))),
        ).where(AuditRecord.at >= since)
    ).one()
    windows = db_session.execute(
        select(func.count(), func.max(MaintenanceWindow.updated_at)).where(
            MaintenanceWindow.ended_at.is_(None), MaintenanceWindow.ends_at > now
        )
    ).one()
    started = db_session.scalar(
        select(func.count()).where(
            MaintenanceWindow.ended_at.is_(None),
            MaintenanceWindow.starts_at <= now,
            MaintenanceWindow.ends_at > now,
        )
    )
    return repr(
        (tuple(incidents), last_incident, tuple(deploys), flags, failures, tuple(windows), started)
    )
