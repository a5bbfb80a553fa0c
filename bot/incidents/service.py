"""Reading and changing incidents. Functions add and flush; the caller commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import OPEN, RESOLVED, Incident, IncidentEvent


def new_dedup_key() -> str:
    # Unique across installations sharing a PagerDuty service (staging and prod bots).
    return f"opsbot-{uuid.uuid4().hex}"


def get(db_session: Session, *, incident_id: int) -> Incident | None:
    return db_session.get(Incident, incident_id)


def get_or_raise(db_session: Session, *, incident_id: int) -> Incident:
    incident = get(db_session, incident_id=incident_id)
    if incident is None:
        raise IncidentNotFound(f"There is no incident #{incident_id}.")
    return incident


def get_by_dedup_key(db_session: Session, *, dedup_key: str) -> Incident | None:
    return db_session.scalars(select(Incident).where(Incident.dedup_key == dedup_key)).first()


def open_for_alarm(db_session: Session, *, alarm_arn: str, lock: bool = False) -> Incident | None:
    query = select(Incident).where(Incident.alarm_arn == alarm_arn, Incident.status == OPEN)
    if lock:
        query = query.with_for_update()
    return db_session.scalars(query).first()


def resolved_since(db_session: Session, *, alarm_arn: str, since: datetime) -> Incident | None:
    """The newest incident of the alarm resolved at or after `since`."""
    query = (
        select(Incident)
        .where(
            Incident.alarm_arn == alarm_arn,
            Incident.status == RESOLVED,
            Incident.resolved_at >= since,
        )
        .order_by(Incident.resolved_at.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def silenced_for_alarm(db_session: Session, *, alarm_arn: str, now: datetime) -> Incident | None:
    """The alarm's newest incident, if it is resolved but its alarm is still silenced."""
    query = (
        select(Incident)
        .where(Incident.alarm_arn == alarm_arn)
        .order_by(Incident.opened_at.desc(), Incident.id.desc())
        .limit(1)
    )
    newest = db_session.scalars(query).first()
    if newest is None or newest.is_open:
        return None
    if newest.silenced_until is None or newest.silenced_until <= now:
        return None
    return newest


def get_by_pagerduty_id(db_session: Session, *, pagerduty_incident_id: str) -> Incident | None:
    query = select(Incident).where(Incident.pagerduty_incident_id == pagerduty_incident_id)
    return db_session.scalars(query.order_by(Incident.id.desc())).first()


def get_by_pagerduty_number(db_session: Session, *, number: int) -> Incident | None:
    query = select(Incident).where(Incident.pagerduty_number == number)
    return db_session.scalars(query.order_by(Incident.id.desc())).first()


def get_by_slack_channel(db_session: Session, *, slack_channel_id: str) -> Incident | None:
    """The incident whose own channel this is (bot/incidents/channels.py)."""
    query = select(Incident).where(Incident.slack_channel_id == slack_channel_id)
    return db_session.scalars(query.order_by(Incident.id.desc())).first()


def lock(db_session: Session, *, incident_id: int) -> Incident | None:
    """The incident, locked for this transaction (PostgreSQL; SQLite locks the whole file)."""
    query = select(Incident).where(Incident.id == incident_id).with_for_update()
    return db_session.scalars(query.execution_options(populate_existing=True)).first()


def list_open(db_session: Session, *, limit: int = 50) -> list[Incident]:
    query = (
        select(Incident)
        .where(Incident.status == OPEN)
        .order_by(Incident.opened_at.desc(), Incident.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))


def create(db_session: Session, *, now: datetime, **values: Any) -> Incident:
    values.setdefault("dedup_key", new_dedup_key())
    values.setdefault("transitions", 0)
    incident = Incident(status=OPEN, paged=False, opened_at=now, updated_at=now, **values)
    db_session.add(incident)
    db_session.flush()
    return incident


def add_event(
    db_session: Session,
    *,
    incident: Incident,
    kind: str,
    at: datetime,
    now: datetime,
    text: str = "",
    actor: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    source_ref: str | None = None,
    data: dict[str, Any] | None = None,
) -> IncidentEvent:
    event = IncidentEvent(
        incident_id=incident.id,
        kind=kind,
        at=at,
        recorded_at=now,
        text=text,
        actor=actor,
        from_state=from_state,
        to_state=to_state,
        source_ref=source_ref,
        data=data or {},
    )
    db_session.add(event)
    db_session.flush()
    return event


def timeline(db_session: Session, *, incident_id: int) -> list[IncidentEvent]:
    query = (
        select(IncidentEvent)
        .where(IncidentEvent.incident_id == incident_id)
        .order_by(IncidentEvent.at, IncidentEvent.id)
    )
    return list(db_session.scalars(query))


def open_for_app(db_session: Session, *, app: str, env: str) -> list[Incident]:
    """Open incidents whose alarm the app environment claims (its snapshot's app and env)."""
    query = select(Incident).where(Incident.status == OPEN).order_by(Incident.id)
    return [
        incident
        for incident in db_session.scalars(query)
        if (incident.snapshot or {}).get("app") == app
        and (incident.snapshot or {}).get("env") == env
    ]
