"""Reading and changing incidents. Functions add and flush; the caller commits."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.incidents.errors import IncidentNotFound
from bot.incidents.models import OPEN, AlarmLastTransition, Incident, IncidentEvent


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


def last_for_alarm(db_session: Session, *, alarm_arn: str, lock: bool = False) -> Incident | None:
    """The alarm's open incident, else the one it resolved last; None when it has none.

    One statement for everything an alarm's transition asks first (is it late, is
    there an incident to reopen, is the alarm silenced). `lock`: the row is locked
    for this transaction and read again once a concurrent one that held it commits
    (PostgreSQL), so two transitions of one alarm never decide on the same stale copy.
    """
    query = (
        select(Incident)
        .where(Incident.alarm_arn == alarm_arn)
        # An open incident has no resolved_at: it comes first.
        .order_by(Incident.resolved_at.desc().nulls_first(), Incident.id.desc())
        .limit(1)
    )
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return db_session.scalars(query).first()


def transition_without_incident(
    db_session: Session, *, alarm_arn: str
) -> AlarmLastTransition | None:
    """The newest transition applied to the alarm while it had no incident to keep it on."""
    return db_session.get(AlarmLastTransition, alarm_arn)


def keep_transition_without_incident(
    db_session: Session, *, alarm_arn: str, state: str, at: datetime, now: datetime
) -> None:
    """Remember a transition applied while the alarm has no incident, unless a newer one is."""
    dialect = postgresql if db_session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(AlarmLastTransition).values(
        alarm_arn=alarm_arn, state=state, state_changed_at=at, recorded_at=now
    )
    newer = statement.excluded.state_changed_at > AlarmLastTransition.state_changed_at
    db_session.execute(
        statement.on_conflict_do_update(
            index_elements=[AlarmLastTransition.alarm_arn],
            set_={
                "state": statement.excluded.state,
                "state_changed_at": statement.excluded.state_changed_at,
                "recorded_at": statement.excluded.recorded_at,
            },
            where=newer,
        )
    )


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
