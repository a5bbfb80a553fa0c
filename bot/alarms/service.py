"""From an SNS message to incidents, Slack messages and pages, in one transaction.

`receive` records the message by its MessageId (a redelivery is a no-op),
parses it, and applies the alarm's transition to the alarm's incident; in a
storm the intake does the two apart, `record_for_later` now and
`apply_recorded` after (bot/alarms/intake.py):

- ALARM or INSUFFICIENT_DATA with no open incident opens one (only ALARM pages);
  a re-ALARM within the reopen window reopens the incident that just resolved
  and withdraws its pending PagerDuty resolve, so a flap pages once, and the page's
  reminder and escalation stand as they were (unless PagerDuty's incident was
  resolved meanwhile, in its app: then it is paged again). An INSUFFICIENT_DATA
  within the window is kept on the resolved incident (it stays resolved), so that
  an ALARM after it reopens that one.
- OK resolves the open incident; the PagerDuty resolve waits out the window.
- While an alarm is silenced, its transitions go on in its last incident (even
  a resolved one): recorded and threaded, never posted anew nor paged.
- While a maintenance window covers an alarm (bot/maintenance), it is posted,
  recorded and threaded as usual but not paged; the window's end pages it if
  it still fires.
- An ALARM on an open incident whose last page was resolved (a hold ended while
  the alarm was out of ALARM) is paged again, or its pending resolve withdrawn, as
  the hold's end would have done; a maintenance window running then keeps it for
  the window's end.
- A transition older than the one already applied (SNS does not guarantee
  order) is kept in the timeline but changes nothing, however long ago the
  alarm's last incident resolved. An OK that finds no open incident is
  remembered (`AlarmLastTransition`) rather than noted on the alarm's last
  incident, unless that one still shows the alarm firing or flapping (a resolve
  by hand, an INSUFFICIENT_DATA within the reopen window) or is silenced: an
  older ALARM arriving after it then opens an incident (or, within the window,
  reopens the last one), and the OK is applied after it, as in-order delivery
  would have left it. That ALARM pages nobody: it is late (a dead-letter redrive,
  SNS out of order), and its alarm is known to have recovered, so its incident's
  timeline and thread say it arrived late and was not paged. An ALARM with no newer
  state recorded pages however old it is: its alarm may still fire, and CloudWatch
  sends nothing more.

An alarm of an account that the topic carrying it may not bring (`TopicAccounts`: by
default, any account but the topic's own) is a notice, as a message that is no alarm is:
whoever may publish to one topic never touches another account's incidents.

Two instances applying transitions of one alarm at once take turns, the second
deciding on what the first committed: each transaction first takes the alarm's lock
(bot/db/locks.py), which holds even while the alarm has no incident row to lock, then
reads the alarm's open incident, else its last one, in one statement and locks it
against what people and PagerDuty do to it meanwhile.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.alarms import describe
from bot.alarms import flows as alarm_flows
from bot.alarms.models import PENDING, ReceivedMessage
from bot.alarms.parse import (
    Alarm,
    MetricTrigger,
    TopicAccounts,
    carried_alarm,
    carrier_account,
    parse_alarm,
)
from bot.alarms.render import notice_message, refused_alarm_message
from bot.alarms.routing import route_for
from bot.apps.claims import claim_for
from bot.config import Config
from bot.db import locks
from bot.db.statements import insert_new_row, insert_new_rows, update_rows
from bot.incidents import flows, render
from bot.incidents import service as incidents
from bot.incidents.models import OPEN, RESOLVED, AlarmLastTransition, Incident
from bot.maintenance import flows as maintenance
from bot.outbox import service as outbox
from bot.slack_dates import slack_date, utc_text
from bot.slack_text import SECTION_MAX

log = logging.getLogger(__name__)

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


# Each topic carries its own account's alarms only (no OPSBOT_SNS_TOPIC_ACCOUNTS).
OWN_ACCOUNTS = TopicAccounts()


@dataclass(frozen=True)
class Reading:
    """What a message brings: an alarm to apply, or a notice; `refused` is an alarm whose
    carrier (`carrier`, a topic or queue) may not bring its account's alarms."""

    alarm: Alarm | None
    refused: Alarm | None = None
    carrier: str | None = None


def read(
    inbound: Inbound, *, topics: TopicAccounts, received_at: datetime | None = None
) -> Reading:
    """What `inbound` brings, its alarm checked against what carried it (`topics`)."""
    parsed = parse_alarm(inbound.body, received_at=received_at)
    if parsed is None:
        return Reading(alarm=None)
    alarm = carried_alarm(
        parsed,
        topics=topics,
        via=inbound.via,
        topic_arn=inbound.topic_arn,
        message_id=inbound.message_id,
    )
    if alarm is not None:
        return Reading(alarm=alarm)
    return Reading(
        alarm=None,
        refused=parsed,
        carrier=topics.carrier(via=inbound.via, topic_arn=inbound.topic_arn),
    )


def receive(
    db_session: Session,
    *,
    inbound: Inbound,
    config: Config,
    now: datetime,
    topics: TopicAccounts = OWN_ACCOUNTS,
) -> str:
    """Record and act on one message; return what was done (for logs and tests)."""
    reading = read(inbound, topics=topics, received_at=now)
    received_id = record(db_session, inbound=inbound, now=now, alarm=reading.alarm)
    if received_id is None:
        return "duplicate"
    return _act(
        db_session,
        received_id=received_id,
        inbound=inbound,
        reading=reading,
        config=config,
        now=now,
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
    db_session: Session,
    *,
    inbounds: list[Inbound],
    now: datetime,
    topics: TopicAccounts = OWN_ACCOUNTS,
) -> list[int | None]:
    """Record messages to be applied later (`apply_recorded`), in one statement; each
    one's row id, or None when its MessageId was recorded before."""
    return insert_new_rows(
        db_session,
        ReceivedMessage,
        unique="message_id",
        rows=[
            _received_row(
                inbound, alarm=read(inbound, topics=topics).alarm, now=now, outcome=PENDING
            )
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
    db_session: Session,
    *,
    received_id: int,
    config: Config,
    now: datetime,
    topics: TopicAccounts = OWN_ACCOUNTS,
) -> str | None:
    """Act on a message recorded as PENDING; None when another transaction took it first
    (a second instance sweeping what this one recorded). Its alarm is read again from the
    row, and checked against the topic the row names as a new message would be."""
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
    return _act(
        db_session,
        received_id=received_id,
        inbound=inbound,
        reading=read(inbound, topics=topics, received_at=now),
        config=config,
        now=now,
    )


def _act(
    db_session: Session,
    *,
    received_id: int,
    inbound: Inbound,
    reading: Reading,
    config: Config,
    now: datetime,
) -> str:
    if reading.alarm is None:
        outcome = _notice(
            db_session,
            inbound=inbound,
            reading=reading,
            received_id=received_id,
            config=config,
            now=now,
        )
    else:
        outcome = apply_alarm(
            db_session,
            alarm=reading.alarm,
            config=config,
            now=now,
            source_ref=inbound.message_id,
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
    reading: Reading,
    received_id: int,
    config: Config,
    now: datetime,
) -> str:
    channel = config.alarms.notices_channel or config.alarm_routes[-1].channel
    if reading.refused is not None:
        message = refused_alarm_message(
            name=reading.refused.name,
            state=reading.refused.new_state,
            account=reading.refused.account,
            carrier=reading.carrier,
            carrier_account=carrier_account(reading.carrier) if reading.carrier else None,
        )
    else:
        message = notice_message(
            subject=inbound.subject, body=inbound.body, topic_arn=inbound.topic_arn
        )
    outbox.post_or_update(
        db_session,
        key=f"notice:{received_id}",
        channel=channel,
        message=message,
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
        config,
        alarm_name=alarm.name,
        dimensions=((d.name, d.value) for d in alarm.dimensions),
        account=alarm.account,
        region=alarm.region,
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
        # A fold reply is one section: no more of a reason (up to 256 KB through SNS) can
        # show, and the held reply is rewritten with its items on every transition.
        "reason": alarm.reason[:SECTION_MAX],
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


def _apply_kept(
    db_session: Session,
    *,
    incident: Incident,
    kept: AlarmLastTransition,
    config: Config,
    now: datetime,
) -> str:
    """The newer transition (an OK) that arrived before the one that opened `incident`,
    with no incident to apply it to then: applied now, after it, as they happened. The
    incident ends as in-order delivery would have left it: resolved, and its page, if
    an earlier transition left it one, resolved after the reopen window."""
    from_state = incident.alarm_state
    incident.alarm_state = kept.state
    incident.state_changed_at = kept.state_changed_at
    incident.transitions += 1
    incident.updated_at = now
    incidents.add_event(
        db_session,
        incident=incident,
        kind="alarm_state",
        at=kept.state_changed_at,
        now=now,
        from_state=from_state,
        to_state=kept.state,
        text="arrived before the transition that opened this incident",
    )
    _resolve(db_session, incident=incident, config=config, now=now)
    transition = {
        "at": kept.state_changed_at.isoformat(),
        "from": from_state,
        "to": kept.state,
        "reason": None,
        "note": "arrived first",
    }
    alarm_flows.show(
        db_session, incident=incident, created=False, transition=transition, config=config, now=now
    )
    return f"; then {kept.state} of {kept.state_changed_at.isoformat()}, arrived first: resolved"


def _note_while_resolved(
    db_session: Session,
    *,
    incident: Incident,
    state: str,
    at: datetime,
    old_state: str | None,
    reason: str,
    ref: str | None,
    config: Config,
    now: datetime,
) -> None:
    """A transition that leaves the resolved incident resolved (an OK after a resolve by
    hand, or INSUFFICIENT_DATA and what follows it within the reopen window): kept on it,
    so that an older ALARM arriving after it (SNS does not keep order) is known to be
    late, and an ALARM after it reopens this incident."""
    from_state = incident.alarm_state
    incident.alarm_state = state
    incident.state_changed_at = at
    incident.updated_at = now
    incidents.add_event(
        db_session,
        incident=incident,
        kind="alarm_state",
        at=at,
        now=now,
        from_state=old_state or from_state,
        to_state=state,
        text=reason,
        source_ref=ref,
    )
    if from_state == state:
        return  # the message shows it already
    # An OK after a resolve by hand updates the message; a new state in between is
    # threaded too, so that the thread tells how the alarm got where it is.
    transition = None
    if state != "OK":
        transition = {
            "at": at.isoformat(),
            "from": from_state or old_state,
            "to": state,
            "reason": reason,
            "note": "stays resolved",
        }
    alarm_flows.show(
        db_session, incident=incident, created=False, transition=transition, config=config, now=now
    )


def _within_reopen_window(incident: Incident, *, config: Config, now: datetime) -> bool:
    window = timedelta(seconds=config.alarms.reopen_window_s)
    return incident.resolved_at is not None and incident.resolved_at >= now - window


def _ok_shows_on(last: Incident, *, config: Config, now: datetime) -> bool:
    """Whether an OK with no open incident is noted on the alarm's last (resolved) one.

    Only when that incident shows the alarm firing (resolved by hand), flapping within
    the reopen window, or silenced: the OK is where the alarm went from what it shows.
    Otherwise (it shows OK already, or it is past the window) the OK is remembered
    apart, so that an older ALARM arriving after it is not taken for late against it:
    in-order, that ALARM would have opened an incident (or reopened this one) that the
    OK resolved.
    """
    if last.alarm_state == "OK":
        return False
    if last.silenced_until is not None and last.silenced_until > now:
        return True  # a silenced alarm's transitions go on in its last incident
    return last.alarm_state == "ALARM" or _within_reopen_window(last, config=config, now=now)


def _ok_with_no_open_incident(
    db_session: Session,
    *,
    last: Incident | None,
    alarm: Alarm,
    config: Config,
    now: datetime,
    ref: str,
) -> str:
    if last is not None and _ok_shows_on(last, config=config, now=now):
        _note_while_resolved(
            db_session,
            incident=last,
            state=alarm.new_state,
            at=alarm.state_change_time,
            old_state=alarm.old_state,
            reason=alarm.reason,
            ref=ref,
            config=config,
            now=now,
        )
    else:
        incidents.keep_transition_without_incident(
            db_session,
            alarm_arn=alarm.arn,
            state=alarm.new_state,
            at=alarm.state_change_time,
            now=now,
        )
    return "OK with no open incident: nothing to resolve"


# What an ALARM or INSUFFICIENT_DATA with no open incident does with the alarm's last one.
REOPEN = "reopen"
KEEP = "keep"  # it stays resolved, the transition noted on it
NEW = "new"  # another incident opens


def _last_goes_on(last: Incident | None, *, alarm: Alarm, config: Config, now: datetime) -> str:
    if last is None:
        return NEW
    if last.silenced_until is not None and last.silenced_until > now:
        return REOPEN  # a silenced alarm is neither posted anew nor paged: its incident goes on
    if not _within_reopen_window(last, config=config, now=now):
        return NEW
    # A flap: an ALARM soon after the OK reopens the incident, and what comes between
    # (no data) waits on it rather than opening and posting another.
    return REOPEN if alarm.new_state == "ALARM" else KEEP


def _kept_newer(db_session: Session, *, alarm: Alarm) -> AlarmLastTransition | None:
    """The OK remembered with no open incident to resolve, when it is newer than `alarm`
    (which is not late, so newer than anything its incidents were left in)."""
    kept = incidents.transition_without_incident(db_session, alarm_arn=alarm.arn)
    if kept is None or kept.state_changed_at <= alarm.state_change_time:
        return None
    return kept


def apply_alarm(
    db_session: Session, *, alarm: Alarm, config: Config, now: datetime, source_ref: str
) -> str:
    # One transaction at a time per alarm, before anything is read: an alarm with no
    # incident has no row to lock, and one whose last incident is resolved has a row
    # that a concurrent ALARM locks but leaves as it is while it opens another.
    locks.serialize(db_session, alarm_lock(alarm.arn))
    last = incidents.last_for_alarm(db_session, alarm_arn=alarm.arn, lock=True)
    # Checked before anything changes, whatever the incident's age: a transition older
    # than the one applied (an ALARM older than the OK that resolved the incident)
    # changes nothing.
    if last is not None and _is_late(alarm, last):
        return _record_late(db_session, incident=last, alarm=alarm, now=now, ref=source_ref)
    created = reopened = False
    incident = last if last is not None and last.is_open else None
    # An OK that arrived with no open incident to resolve, newer than this transition:
    # applied after it.
    kept = None
    if incident is None:
        if alarm.new_state == "OK":
            return _ok_with_no_open_incident(
                db_session, last=last, alarm=alarm, config=config, now=now, ref=source_ref
            )
        kept = _kept_newer(db_session, alarm=alarm)
        goes_on = _last_goes_on(last, alarm=alarm, config=config, now=now)
        if goes_on == KEEP:
            assert last is not None
            _note_while_resolved(
                db_session,
                incident=last,
                state=alarm.new_state,
                at=alarm.state_change_time,
                old_state=alarm.old_state,
                reason=alarm.reason,
                ref=source_ref,
                config=config,
                now=now,
            )
            if kept is not None:
                _note_while_resolved(
                    db_session,
                    incident=last,
                    state=kept.state,
                    at=kept.state_changed_at,
                    old_state=None,
                    reason="arrived before an older transition",
                    ref=None,
                    config=config,
                    now=now,
                )
                return (
                    f"incident {last.id} kept resolved: {alarm.new_state}; then {kept.state}"
                    f" of {kept.state_changed_at.isoformat()}, arrived first"
                )
            return f"incident {last.id} kept resolved: {alarm.new_state}"
        if goes_on == REOPEN:
            assert last is not None
            incident = last
            reopened = True
            incident.status = OPEN
            incident.resolved_at = None
            incident.resolved_by = None
        else:
            incident = _open_incident(db_session, alarm=alarm, config=config, now=now)
            created = True

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
    # An ALARM older than the OK kept for its alarm recovered before it arrived: nothing
    # is paged, held for a window's end, or withdrawn (the page's pending resolve, if
    # any, still goes), and the OK is applied after it below. Only for an alarm known by
    # its ARN: without one, its identity (account and name) is shared by alarms of the
    # same name in other regions, whose OK says nothing of this one.
    late = kept is not None and alarm.new_state == "ALARM" and alarm.arn.startswith("arn:")
    # A flap of a page that stands: its pending resolve is withdrawn before any hold is
    # weighed, for a window has nothing to hold then and must not say it held a page.
    flap = NOT_WITHDRAWN
    if reopened and not late:
        flap = _withdraw_on_flap(db_session, incident=incident, alarm=alarm, now=now)
    # A maintenance window holds the page (the alarm is still posted and threaded).
    if late:
        outcome = LATE_NOT_PAGED
    elif flap == STANDS:
        outcome = ", pending resolve withdrawn"
    else:
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
            resolved_there=flap == RESOLVED_THERE,
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
    if late:
        assert kept is not None
        # After `show`: a new incident's message is queued before a reply in its thread.
        _note_late_alarm(db_session, incident=incident, alarm=alarm, kept=kept, now=now)
    if kept is not None:
        outcome += _apply_kept(db_session, incident=incident, kept=kept, config=config, now=now)
    return f"incident {incident.id} {verb}: {alarm.new_state}{outcome}"


# What an ALARM older than the OK kept for its alarm did to the page (`_note_late_alarm`).
LATE_NOT_PAGED = ", arrived late: not paged"


def _note_late_alarm(
    db_session: Session,
    *,
    incident: Incident,
    alarm: Alarm,
    kept: AlarmLastTransition,
    now: datetime,
) -> None:
    """Say on the incident's timeline and thread that `alarm`, older than the `kept`
    transition recorded before it, arrived late and paged nobody."""
    late_by = render.duration(max((now - alarm.state_change_time).total_seconds(), 0.0))
    incidents.add_event(
        db_session,
        incident=incident,
        kind="late_transition",
        at=alarm.state_change_time,
        now=now,
        text=(
            f"{alarm.new_state} arrived {late_by} after it fired, after the alarm's "
            f"{kept.state} of {utc_text(kept.state_changed_at, seconds=True)}: not paged"
        ),
    )
    flows.thread_text(
        db_session,
        incident=incident,
        text=(
            f":hourglass: Not paged: this {alarm.new_state} of "
            f"{slack_date(alarm.state_change_time)} arrived {late_by} after it fired, and the "
            f"alarm's {kept.state} of {slack_date(kept.state_changed_at)} was recorded before it."
        ),
        now=now,
    )
    log.info(
        "incident %s: %s of %s arrived %s late, after the %s of %s: not paged",
        incident.id,
        alarm.new_state,
        alarm.state_change_time.isoformat(),
        late_by,
        kept.state,
        kept.state_changed_at.isoformat(),
        extra={"incident": incident.id, "alarm_arn": alarm.arn, "dedup_key": incident.dedup_key},
    )


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
    resolved_there: bool,
) -> str:
    if alarm.new_state == "OK":
        _resolve(db_session, incident=incident, config=config, now=now)
        return ", resolved"
    if alarm.new_state != "ALARM":
        return ""
    if reopened and incident.paged:
        # Its pending resolve, if any, was withdrawn already (`_withdraw_on_flap`).
        if silenced:
            if resolved_there:
                # Nothing is paged until the hold ends, which pages anew and starts
                # them over: the first page's reminder and escalation would chase
                # (and escalate) a page that no longer stands.
                flows.cancel_reminders(db_session, incident=incident)
            return ", silenced: not paged again"
        # The resolve went out, or was tried and may have landed, or PagerDuty's incident
        # was resolved there: this is a new page. A resolve still pending goes first, so
        # the page is never resolved by it.
        flows.page_trigger(db_session, incident=incident, now=now)
        if not resolved_there:
            return ", paged again"
        # Whoever resolved it in PagerDuty is told why they are paged for it again.
        flows.thread_text(
            db_session,
            incident=incident,
            text=":rotating_light: Paged again: the alarm fires again, and its PagerDuty "
            "incident was resolved.",
            now=now,
        )
        return f", {flows.PAGED_AGAIN_RESOLVED}"
    if silenced:
        return ", silenced: not paged"
    if incident.paged:
        return _page_again_if_off(db_session, incident=incident, now=now)
    if flows.page_trigger(db_session, incident=incident, now=now, new=created):
        return ", paged"
    return ""


def alarm_lock(alarm_arn: str) -> str:
    """The name (bot/db/locks.py) that the transactions applying the alarm's transitions
    take first, in turn."""
    return f"alarm:{alarm_arn}"


# What an ALARM reopening an incident did to its page's pending resolve (`_withdraw_on_flap`).
STANDS = "stands"  # withdrawn: the page stands
RESOLVED_THERE = "resolved there"  # withdrawn, but PagerDuty's incident is resolved
NOT_WITHDRAWN = ""  # none waiting (sent, tried, or never queued), or not an ALARM


def _withdraw_on_flap(
    db_session: Session, *, incident: Incident, alarm: Alarm, now: datetime
) -> str:
    """An ALARM reopening a paged incident whose resolve still waits: the resolve is
    withdrawn and the page stands (STANDS), with its reminder and escalation (whose jobs
    found the incident resolved while it was, and are gone).

    Unless PagerDuty resolved its incident meanwhile (someone did in PagerDuty's app, or
    its auto-resolve): the resolve is withdrawn then too, for it would hold the new page
    back until its time, but no page stands, and the caller pages again (RESOLVED_THERE).
    """
    if alarm.new_state != "ALARM" or not incident.paged:
        return NOT_WITHDRAWN
    if not flows.withdraw_resolve(db_session, incident=incident, now=now):
        return NOT_WITHDRAWN
    if flows.page_resolved_in_pagerduty(incident):
        log.info(
            "incident %s flaps back to ALARM, PagerDuty incident %s resolved: a new page is owed",
            incident.id,
            incident.pagerduty_incident_id,
            extra={"incident": incident.id, "pagerduty_incident": incident.pagerduty_incident_id},
        )
        return RESOLVED_THERE
    flows.schedule_reminder_jobs(db_session, incident=incident)
    return STANDS


def _page_again_if_off(db_session: Session, *, incident: Incident, now: datetime) -> str:
    """An ALARM on an open incident marked paged, whose page may be off: its last
    PagerDuty event a resolve, pending or sent, or PagerDuty's incident resolved there.

    A silence keeps an alarm's OK and what follows it in one incident, and a hold (a
    silence, a maintenance window) that ends while the alarm is out of ALARM resumes
    nothing. With no hold running, this ALARM does what that end would have done
    (`resume_held_page`); a window running now keeps the page as it is, for its own
    end to resume.
    """
    last = outbox.last_pagerduty_event(db_session, dedup_key=incident.dedup_key)
    resolved = last is not None and last.payload.get("action") == "resolve"
    if not (resolved or flows.page_resolved_in_pagerduty(incident)):
        return ""  # its page is on
    held = maintenance.hold_owed_page(db_session, incident=incident, now=now)
    if held is not None:
        # As for an ALARM a window holds: the thread says why nobody is paged.
        flows.thread_text(
            db_session, incident=incident, text=f":construction: Not paged: {held}.", now=now
        )
        return f", {held}"
    resumed = flows.resume_held_page(db_session, incident=incident, now=now, other_holds=False)
    return f", {resumed.said}" if resumed is not None else ""


def _resolve(db_session: Session, *, incident: Incident, config: Config, now: datetime) -> None:
    """What an OK does to the open incident; the page's resolve waits out the reopen window."""
    incident.status = RESOLVED
    incident.resolved_at = now
    flows.page_resolve(
        db_session, incident=incident, now=now, delay_s=config.alarms.reopen_window_s
    )
