"""An ALARM older than a state recorded for its alarm pages nobody, whichever path applies it.

A dead-letter redrive days later, or SNS delivering an alarm's OK before its ALARM,
brings an ALARM whose alarm is known to have recovered. It is applied as in-order
delivery would have left it (its incident posted, then resolved by the OK), but it
neither pages on-call now nor mentions the route; the timeline and the thread say
why. An ALARM newer than every recorded state pages as ever, however late it comes.
Real databases (SQLite and PostgreSQL), through the immediate path (`receive`) and a
storm's (`record_for_later`, then `apply_recorded`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.alarms.service import Inbound, apply_recorded, receive, record_for_later
from bot.config import Config
from bot.db.engine import make_sessionmaker
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import PAGERDUTY_EVENT, SLACK_MESSAGE, SLACK_REPLY, Delivery
from bot.settings import Settings
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.incidents.helpers import incident_message, message_text, outbox_idle
from tests.support import LiveService, wait_for

NAME = "prod-api-5xx"  # the paging route, which mentions <!subteam^S0ONCALL>
ARN = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:" + NAME
MENTION = "<!subteam^S0ONCALL>"
T1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
# The redrive: three days after the alarm fired and recovered.
NOW = T1 + timedelta(days=3)

Apply = Callable[[Session, Inbound, Config, datetime], str]


def inbound(message_id: str, state: str, old: str, at: datetime) -> Inbound:
    body = {
        "AlarmName": NAME,
        "AlarmArn": ARN,
        "NewStateValue": state,
        "OldStateValue": old,
        "NewStateReason": f"{old} to {state}",
        "StateChangeTime": at.isoformat(),
    }
    return Inbound(message_id=message_id, via="https", body=json.dumps(body), topic_arn=TOPIC_ARN)


def at_once(db_session: Session, message: Inbound, config: Config, now: datetime) -> str:
    return receive(db_session, inbound=message, config=config, now=now)


def in_a_storm(db_session: Session, message: Inbound, config: Config, now: datetime) -> str:
    [received_id] = record_for_later(db_session, inbounds=[message], now=now)
    assert received_id is not None
    db_session.commit()
    outcome = apply_recorded(db_session, received_id=received_id, config=config, now=now)
    assert outcome is not None
    return outcome


PATHS = pytest.mark.parametrize("apply", [at_once, in_a_storm], ids=["at_once", "storm"])


def applied(
    engine: sa.Engine, config: Config, apply: Apply, message: Inbound, now: datetime = NOW
) -> str:
    with make_sessionmaker(engine)() as db_session:
        outcome = apply(db_session, message, config, now)
        db_session.commit()
        return outcome


def deliveries(engine: sa.Engine, kind: str) -> list[dict[str, object]]:
    with make_sessionmaker(engine)() as db_session:
        query = sa.select(Delivery.payload).where(Delivery.kind == kind).order_by(Delivery.id)
        return list(db_session.scalars(query))


def triggers(engine: sa.Engine) -> list[dict[str, object]]:
    return [p for p in deliveries(engine, PAGERDUTY_EVENT) if p["action"] == "trigger"]


def incidents_and_events(engine: sa.Engine) -> tuple[list[Incident], list[IncidentEvent]]:
    with make_sessionmaker(engine)() as db_session:
        rows = list(db_session.scalars(sa.select(Incident).order_by(Incident.id)))
        events = list(db_session.scalars(sa.select(IncidentEvent).order_by(IncidentEvent.id)))
        return rows, events


def send(service: LiveService, signer: SnsSigner, state: str, at: datetime) -> None:
    """The alarm's notification as SNS posts it to /sns."""
    envelope = signer.notification(
        alarm_message(name=NAME, state=state, at=at), topic_arn=TOPIC_ARN
    )
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={
            "x-amz-sns-message-type": "Notification",
            "x-amz-sns-topic-arn": TOPIC_ARN,
            "content-type": "text/plain; charset=UTF-8",
        },
    )
    assert answer.status_code == 200, answer.text


@PATHS
def test_an_alarm_redriven_days_after_its_recorded_ok_is_posted_resolved_and_not_paged(
    engine: sa.Engine, config: Config, apply: Apply
) -> None:
    # The OK went through; its ALARM was dead-lettered, and is redriven three days on.
    ok = inbound("m-ok", "OK", "ALARM", T1 + timedelta(minutes=1))
    assert applied(engine, config, apply, ok) == "OK with no open incident: nothing to resolve"
    outcome = applied(engine, config, apply, inbound("m-alarm", "ALARM", "OK", T1))

    [incident], events = incidents_and_events(engine)
    assert outcome == (
        f"incident {incident.id} opened: ALARM, arrived late: not paged; "
        "then OK of 2026-12-01T10:01:00+00:00, arrived first: resolved"
    )
    assert (incident.status, incident.alarm_state, incident.paged) == ("resolved", "OK", False)
    assert deliveries(engine, PAGERDUTY_EVENT) == []  # neither a trigger nor a resolve
    assert [(e.kind, e.to_state) for e in events] == [
        ("alarm_state", "ALARM"),
        ("late_transition", None),
        ("alarm_state", "OK"),
    ]
    assert events[1].at == T1
    assert events[1].text == (
        "ALARM arrived 72 h 0 min after it fired, after the alarm's OK of "
        "2026-12-01 10:01:00 UTC: not paged"
    )
    # Posted once, as resolved: the route's mention never goes out.
    [post] = deliveries(engine, SLACK_MESSAGE)
    assert MENTION not in json.dumps(post)
    assert str(post["text"]).startswith(":large_green_circle:")
    said = " ".join(str(reply["text"]) for reply in deliveries(engine, SLACK_REPLY))
    assert ":hourglass: Not paged: this ALARM of" in said
    assert "arrived 72 h 0 min after it fired" in said


@PATHS
def test_an_alarm_reopening_a_page_resolved_in_pagerduty_is_not_paged_when_its_ok_came_first(
    engine: sa.Engine, config: Config, apply: Apply
) -> None:
    config = config.model_copy(
        update={"alarms": config.alarms.model_copy(update={"reopen_window_s": 600})}
    )

    applied(engine, config, at_once, inbound("m-1", "ALARM", "OK", T1), T1)
    at = T1 + timedelta(minutes=1)
    applied(engine, config, at_once, inbound("m-2", "OK", "ALARM", at), at)
    with make_sessionmaker(engine)() as db_session:
        # PagerDuty's webhook says someone resolved the page in its app.
        db_session.execute(sa.update(Incident).values(pagerduty_status="resolved"))
        db_session.commit()
    # Within the reopen window, minutes 2 (ALARM) and 3 (OK) arrive swapped.
    now = T1 + timedelta(minutes=3, seconds=30)
    applied(engine, config, apply, inbound("m-4", "OK", "ALARM", T1 + timedelta(minutes=3)), now)
    alarm_2 = inbound("m-3", "ALARM", "OK", T1 + timedelta(minutes=2))
    outcome = applied(engine, config, apply, alarm_2, now)

    [incident], events = incidents_and_events(engine)
    assert outcome == (
        f"incident {incident.id} reopened: ALARM, arrived late: not paged; "
        "then OK of 2026-12-01T10:03:00+00:00, arrived first: resolved"
    )
    assert (incident.status, incident.alarm_state) == ("resolved", "OK")
    assert len(triggers(engine)) == 1  # the first page only
    assert [e.kind for e in events][-3:] == ["reopened", "late_transition", "alarm_state"]


@PATHS
def test_an_alarm_without_an_arn_is_not_judged_by_another_regions_ok(
    engine: sa.Engine, config: Config, apply: Apply
) -> None:
    # Without an AlarmArn an alarm is known by its account and name only, which alarms
    # of the same name in other regions share: one region's OK says nothing of another.
    def arnless(message_id: str, state: str, old: str, at: datetime, region: str) -> Inbound:
        fields = {
            "AlarmName": NAME,
            "AWSAccountId": "123456789012",
            "Region": region,
            "NewStateValue": state,
            "OldStateValue": old,
            "NewStateReason": f"{old} to {state}",
            "StateChangeTime": at.isoformat(),
        }
        return Inbound(
            message_id=message_id, via="https", body=json.dumps(fields), topic_arn=TOPIC_ARN
        )

    now = T1 + timedelta(minutes=2)
    east_ok = arnless(
        "m-east-ok", "OK", "ALARM", T1 + timedelta(seconds=5), "US East (N. Virginia)"
    )
    applied(engine, config, apply, east_ok, now)
    west_alarm = arnless("m-west-alarm", "ALARM", "OK", T1 + timedelta(seconds=3), "EU (Ireland)")
    outcome = applied(engine, config, apply, west_alarm, now)

    assert "not paged" not in outcome
    assert len(triggers(engine)) == 1


@PATHS
def test_an_alarm_newer_than_every_recorded_state_pages_however_late_it_comes(
    engine: sa.Engine, config: Config, apply: Apply
) -> None:
    # Nothing newer is known: the alarm may fire still, and CloudWatch sends nothing more.
    ok = inbound("m-ok", "OK", "ALARM", T1 - timedelta(minutes=1))
    applied(engine, config, apply, ok)
    outcome = applied(engine, config, apply, inbound("m-alarm", "ALARM", "OK", T1))

    [incident], events = incidents_and_events(engine)
    assert outcome == f"incident {incident.id} opened: ALARM, paged"
    assert (incident.status, incident.alarm_state, incident.paged) == ("open", "ALARM", True)
    assert [p["dedup_key"] for p in triggers(engine)] == [incident.dedup_key]
    assert [e.kind for e in events] == ["alarm_state"]
    [post] = deliveries(engine, SLACK_MESSAGE)
    assert MENTION in json.dumps(post)


def test_a_redriven_alarm_reaches_slack_resolved_without_a_mention_and_pagerduty_not_at_all(
    settings: Settings,
    config: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = make_service(settings, config)
    fired = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    send(service, sns_signer, "OK", fired + timedelta(minutes=1))
    send(service, sns_signer, "ALARM", fired)
    wait_for(lambda: outbox_idle(service))

    with service.runtime.sessions() as db_session:
        [incident] = db_session.scalars(sa.select(Incident)).all()
    [message] = slack.channel_messages("C0PRODALERTS")
    assert message.ts == wait_for(lambda: incident_message(slack, incident)).ts
    assert MENTION not in message_text(message)
    assert message.text.startswith(":large_green_circle:")
    thread = " ".join(m.text for m in slack.thread("C0PRODALERTS", message.ts))
    assert "Not paged: this ALARM of" in thread
    assert pagerduty.events == []
