"""From an SNS message to incidents, Slack messages and pages, in one transaction.

`receive` records the message by its MessageId (a redelivery is a no-op),
parses it, and applies the alarm's transition to the alarm's incident; in a
storm the intake does the two apart, `record_for_later` now and
`apply_recorded` after (bot/alarms/intake.py):

- ALARM or INSUFFICIENT_DATA with no open incident opens one (only ALARM pages);
  a re-ALARM within the reopen window reopens the incident that just resolved
  and withdraws its pending PagerDuty resolve, so a flap pages once.
- OK resolves the open incident; the PagerDuty resolve waits out the window.
- While an alarm is silenced, its transitions go on in its last incident (even
  a resolved one): recorded and threaded, never posted anew nor paged.
- While a maintenance window covers an alarm (bot/maintenance), it is posted,
  recorded and threaded as usual but not paged; the window's end pages it if
  it still fires.
- A transition older than the one already applied (SNS does not guarantee
  order) is kept in the timeline but changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.alarms import describe
from bot.alarms import flows as alarm_flows
from bot.alarms.models import PENDING, ReceivedMessage
from bot.alarms.parse import Alarm, MetricTrigger, parse_alarm
from bot.alarms.render import notice_message
from bot.alarms.routing import route_for
from bot.apps.claims import claim_for
from bot.config import Config
from bot.db.statements import insert_new_row, insert_new_rows, update_rows
from bot.incidents import flows
from bot.incidents import service as incidents
from bot.incidents.models import OPEN, RESOLVED, Incident
from bot.maintenance import flows as maintenance
from bot.outbox import service as outbox

# A recorded message's outcome while its transaction applies it.
APPLYING = "applying"


@dataclass(frozen=True)
class Inbound:
    """A message as it arrived, whatever the transport."""

    message_id: str
    via: str  # https | sqs
    body: str  # the SNS Message
    topic_arn: str | None = None
    subject: str | None = None


def receive(db_session: Session, *, inbound: Inbound, config: Config, now: datetime) -> str:
    """Record and act on one message; return what was done (for logs and tests)."""
    alarm = parse_alarm(inbound.body)
    received_id = record(db_session, inbound=inbound, now=now, alarm=alarm)
    if received_id is None:
        return "duplicate"
    return _act(
        db_session, received_id=received_id, inbound=inbound, alarm=alarm, config=config, now=now
    )


def record(
    db_session: Session, *, inbound: Inbound, now: datetime, alarm: Alarm | None
) -> int | None:
    """Record the message; its row's id, or None when its MessageId was recorded before.

    A delivery of a MessageId already recorded (or being recorded by a concurrent
    transaction, which this one waits for) stops here, before any side effect.
    `alarm`: the message parsed (None: a notice).
    """
    return insert_new_row(
        db_session,
        ReceivedMessage,
        unique="message_id",
        **_received_row(inbound, alarm=alarm, now=now, outcome=""),
    )


def record_for_later(
    db_session: Session, *, inbounds: list[Inbound], now: datetime
) -> list[int | None]:
    """Record messages to be applied later (`apply_recorded`), in one statement; each
    one's row id, or None when its MessageId was recorded before."""
    return insert_new_rows(
        db_session,
        ReceivedMessage,
        unique="message_id",
        rows=[
            _received_row(inbound, alarm=parse_alarm(inbound.body), now=now, outcome=PENDING)
            for inbound in inbounds
        ],
    )


def _received_row(
    inbound: Inbound, *, alarm: Alarm | None, now: datetime, outcome: str
) -> dict[str, Any]:
    return {
        "message_id": inbound.message_id,
        "via": inbound.via,
        "topic_arn": inbound.topic_arn,
        "kind": "notice" if alarm is None else "alarm",
        "subject": (inbound.subject or "")[:255] or None,
        "body": inbound.body,
        "outcome": outcome,
        "received_at": now,
    }


def apply_recorded(
    db_session: Session, *, received_id: int, config: Config, now: datetime
) -> str | None:
    """Act on a message recorded as PENDING; None when another transaction took it first
    (a second instance sweeping what this one recorded)."""
    claimed = update_rows(
        db_session,
        update(ReceivedMessage)
        .where(ReceivedMessage.id == received_id, ReceivedMessage.outcome == PENDING)
        .values(outcome=APPLYING),
    )
    if not claimed:
        return None
    row = db_session.execute(
        select(
            ReceivedMessage.message_id,
            ReceivedMessage.via,
            ReceivedMessage.body,
            ReceivedMessage.topic_arn,
            ReceivedMessage.subject,
        ).where(ReceivedMessage.id == received_id)
    ).one()
    inbound = Inbound(
        message_id=row.message_id,
        via=row.via,
        body=row.body,
        topic_arn=row.topic_arn,
        subject=row.subject,
    )
    alarm = parse_alarm(inbound.body)
    return _act(
        db_session, received_id=received_id, inbound=inbound, alarm=alarm, config=config, now=now
    )


def _act(
    db_session: Session,
    *,
    received_id: int,
    inbound: Inbound,
    alarm: Alarm | None,
    config: Config,
    now: datetime,
) -> str:
    if alarm is None:
        outcome = _notice(
            db_session, inbound=inbound, received_id=received_id, config=config, now=now
        )
    else:
        outcome = apply_alarm(
            db_session, alarm=alarm, config=config, now=now, source_ref=inbound.message_id
        )
    update_rows(
        db_session,
        update(ReceivedMessage)
        .where(ReceivedMessage.id == received_id)
        .values(outcome=outcome[:255]),
    )
    return outcome


def _notice(
    db_session: Session,
    *,
    inbound: Inbound,
    received_id: int,
    config: Config,
    now: datetime,
) -> str:
    channel = config.alarms.notices_channel or config.alarm_routes[-1].channel
    outbox.post_or_update(
        db_session,
        key=f"notice:{received_id}",
        channel=channel,
        message=notice_message(
            subject=inbound.subject, body=inbound.body, topic_arn=inbound.topic_arn
        ),
        now=now,
        new_key=True,
    )
    return "notice posted"


def snapshot(alarm: Alarm, config: Config) -> dict[str, Any]:
    """What the incident's message shows of the alarm's latest state, and whose alarm it is."""
    component = None
    if isinstance(alarm.trigger, MetricTrigger):
        component = f"{alarm.trigger.namespace}/{alarm.trigger.metric_name}".strip("/")
    claim = claim_for(
        config, alarm_name=alarm.name, dimensions=((d.name, d.value) for d in alarm.dimensions)
    )
    return {
        "app": claim.app if claim else None,
        "env": claim.env if claim else None,
        "changes_window_min": config.alarms.changes_window_min if claim else None,
        "kind": alarm.kind,
        "reason": alarm.reason,
        "description": alarm.description,
        "metric": describe.metric_text(alarm),
        "threshold": describe.threshold_text(alarm),
        "console_url": describe.console_url(alarm),
        "alarm_arn": alarm.arn,
        "region_name": alarm.region_name,
        "component": component,
    }


def _transition(alarm: Alarm, from_state: str | None, note: str | None = None) -> dict[str, Any]:
    return {
        "at": alarm.state_change_time.isoformat(),
        "from": from_state or alarm.old_state,
        "to": alarm.new_state,
        "reason": alarm.reason,
        "note": note,
    }


def _open_incident(db_session: Session, *, alarm: Alarm, config: Config, now: datetime) -> Incident:
    route = route_for(
        config.alarm_routes, alarm_name=alarm.name, account=alarm.account, region=alarm.region
    )
    return incidents.create(
        db_session,
        now=now,
        source="alarm",
        title=alarm.name,
        alarm_arn=alarm.arn,
        alarm_name=alarm.name,
        account=alarm.account,
        region=alarm.region,
        route_name=route.label,
        channel=route.channel,
        severity=route.severity,
        mention=route.mention,
        routing_key_env=route.pagerduty_routing_key_env,
        remind_after_min=route.remind_after_min,
        escalate_after_min=route.escalate_after_min,
        # Inserted in the alarm's state: no UPDATE follows the INSERT.
        alarm_state=alarm.new_state,
        state_changed_at=alarm.state_change_time,
        transitions=1,
        snapshot=snapshot(alarm, config),
    )


def _is_late(alarm: Alarm, incident: Incident) -> bool:
    return bool(incident.state_changed_at and alarm.state_change_time < incident.state_changed_at)


def _record_late(
    db_session: Session, *, incident: Incident, alarm: Alarm, now: datetime, ref: str
) -> str:
    incidents.add_event(
        db_session,
        incident=incident,
        kind="late_transition",
        at=alarm.state_change_time,
        now=now,
        from_state=alarm.old_state,
        to_state=alarm.new_state,
        text="arrived after a newer transition; not applied",
        source_ref=ref,
    )
    return f"late transition for incident {incident.id}: recorded only"


def _note_newer_ok(
    db_session: Session,
    *,
    incident: Incident,
    alarm: Alarm,
    config: Config,
    now: datetime,
    ref: str,
) -> None:
    """An OK newer than what the resolved incident last saw: keep its time, so that an
    older ALARM arriving after it (SNS does not keep order) is known to be late."""
    shown_changes = incident.alarm_state != alarm.new_state
    incident.alarm_state = alarm.new_state
    incident.state_changed_at = alarm.state_change_time
    incident.updated_at = now
    incidents.add_event(
        db_session,
        incident=incident,
        kind="alarm_state",
        at=alarm.state_change_time,
        now=now,
        from_state=alarm.old_state,
        to_state=alarm.new_state,
        text=alarm.reason,
        source_ref=ref,
    )
    if shown_changes:
        alarm_flows.show(
            db_session, incident=incident, created=False, transition=None, config=config, now=now
        )


def apply_alarm(
    db_session: Session, *, alarm: Alarm, config: Config, now: datetime, source_ref: str
) -> str:
    window = timedelta(seconds=config.alarms.reopen_window_s)
    incident = incidents.open_for_alarm(db_session, alarm_arn=alarm.arn, lock=True)
    created = reopened = False
    if incident is None:
        recent = incidents.resolved_since(db_session, alarm_arn=alarm.arn, since=now - window)
        # Checked before anything changes: an ALARM older than the OK that
        # resolved the incident must not reopen it.
        if recent is not None and _is_late(alarm, recent):
            return _record_late(db_session, incident=recent, alarm=alarm, now=now, ref=source_ref)
        if alarm.new_state == "OK":
            if recent is not None:
                _note_newer_ok(
                    db_session,
                    incident=recent,
                    alarm=alarm,
                    config=config,
                    now=now,
                    ref=source_ref,
                )
            return "OK with no open incident: nothing to resolve"
        incident = recent
        silenced_one = incidents.silenced_for_alarm(db_session, alarm_arn=alarm.arn, now=now)
        if silenced_one is not None:
            # A silenced alarm is neither posted anew nor paged: its last incident goes on.
            incident = silenced_one
        if incident is not None and (alarm.new_state == "ALARM" or silenced_one is not None):
            reopened = True
            incident.status = OPEN
            incident.resolved_at = None
            incident.resolved_by = None
        else:
            incident = _open_incident(db_session, alarm=alarm, config=config, now=now)
            created = True

    if _is_late(alarm, incident):
        return _record_late(db_session, incident=incident, alarm=alarm, now=now, ref=source_ref)

    from_state = None
    if not created:
        from_state = incident.alarm_state
        incident.alarm_state = alarm.new_state
        incident.state_changed_at = alarm.state_change_time
        incident.transitions += 1
        incident.snapshot = snapshot(alarm, config)
        incident.updated_at = now
    incidents.add_event(
        db_session,
        incident=incident,
        kind="reopened" if reopened else "alarm_state",
        at=alarm.state_change_time,
        now=now,
        from_state=from_state or alarm.old_state,
        to_state=alarm.new_state,
        text=alarm.reason,
        source_ref=source_ref,
    )

    silenced = incident.silenced_until is not None and incident.silenced_until > now
    # A maintenance window holds the page (the alarm is still posted and threaded).
    held = maintenance.hold(
        db_session,
        incident=incident,
        state=alarm.new_state,
        created=created,
        reopened=reopened,
        silenced=silenced,
        now=now,
    )
    outcome = _apply_paging(
        db_session,
        incident=incident,
        alarm=alarm,
        config=config,
        now=now,
        reopened=reopened,
        silenced=silenced or held is not None,
        created=created,
    )
    transition = None
    if not created:
        note = "reopened" if reopened else ("silenced" if silenced else None)
        transition = _transition(alarm, from_state, note)
    alarm_flows.show(
        db_session,
        incident=incident,
        created=created,
        transition=transition,
        config=config,
        now=now,
    )
    verb = "opened" if created else ("reopened" if reopened else "updated")
    return f"incident {incident.id} {verb}: {alarm.new_state}{outcome}"


def _apply_paging(
    db_session: Session,
    *,
    incident: Incident,
    alarm: Alarm,
    config: Config,
    now: datetime,
    reopened: bool,
    silenced: bool,
    created: bool,
) -> str:
    if alarm.new_state == "OK":
        incident.status = RESOLVED
        incident.resolved_at = now
        flows.page_resolve(
            db_session, incident=incident, now=now, delay_s=config.alarms.reopen_window_s
        )
        return ", resolved"
    if alarm.new_state != "ALARM":
        return ""
    if reopened and incident.paged:
        if flows.withdraw_resolve(db_session, incident=incident, now=now):
            return ", pending resolve withdrawn"
        if silenced:
            return ", silenced: not paged again"
        # The resolve went out, or was tried and may have landed: this is a new
        # page. A resolve still pending goes first, so the page is never resolved by it.
        flows.page_trigger(db_session, incident=incident, now=now)
        return ", paged again"
    if silenced:
        return ", silenced: not paged"
    if not incident.paged and flows.page_trigger(
        db_session, incident=incident, now=now, new=created
    ):
        return ", paged"
    return ""
