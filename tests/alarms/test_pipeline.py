"""An alarm's whole path: signed SNS → /sns → incident → outbox → Slack and PagerDuty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery
from bot.sandbox.alarms import alarm_message, alarm_subject
from bot.sandbox.pagerduty import PagerDutyEmulator
from bot.sandbox.slack import SlackEmulator
from bot.sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.support import LiveService, wait_for

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def send(
    service: LiveService,
    signer: SnsSigner,
    message: str,
    *,
    message_id: str | None = None,
    subject: str | None = None,
) -> int:
    envelope = signer.notification(
        message, topic_arn=TOPIC_ARN, subject=subject, message_id=message_id
    )
    answer = service.post(
        "/sns",
        content=body(envelope),
        headers={
            "x-amz-sns-message-type": "Notification",
            "content-type": "text/plain; charset=UTF-8",
        },
    )
    return answer.status_code


def alarm(name: str, state: str, at: datetime, **kwargs: object) -> str:
    return alarm_message(name=name, state=state, at=at, **kwargs)  # type: ignore[arg-type]


def outbox_empty(service: LiveService) -> bool:
    with service.runtime.sessions() as db:
        return db.scalar(sa.select(sa.func.count()).where(Delivery.status == "pending")) == 0


def test_alarm_posts_once_and_pages_once(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    message = alarm("prod-api-5xx", "ALARM", T0)
    assert (
        send(
            service,
            sns_signer,
            message,
            message_id="m-1",
            subject=alarm_subject("prod-api-5xx", "ALARM"),
        )
        == 200
    )
    wait_for(lambda: slack.channel_messages("C0PRODALERTS") and pagerduty.events)
    wait_for(lambda: outbox_empty(service))

    posted = slack.channel_messages("C0PRODALERTS")
    assert len(posted) == 1
    text = str(posted[0].blocks)
    assert "prod-api-5xx" in posted[0].text and "ALARM" in posted[0].text
    assert "AWS/ApplicationELB/HTTPCode_Target_5XX_Count" in text
    assert "> 10 for 1 of 1 periods" in text
    assert "123456789012 / us-east-1" in text
    assert "<!subteam^S0ONCALL>" in text
    assert (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1#alarmsV2:alarm/prod-api-5xx"
        in text
    )
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]
    event = pagerduty.events[0]
    assert event["payload"]["severity"] == "critical"
    assert event["links"][0]["href"].startswith("https://us-east-1.console.aws.amazon.com/")
    assert len(pagerduty.incidents) == 1

    # The same SNS message again (a retry keeps its MessageId) changes nothing.
    assert send(service, sns_signer, message, message_id="m-1") == 200
    wait_for(lambda: outbox_empty(service))
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert len(slack.calls_to("chat.update")) == 0
    assert len(pagerduty.events) == 1


def test_ok_updates_threads_and_resolves_the_same_page(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    send(service, sns_signer, alarm("prod-db-cpu", "ALARM", T0))
    wait_for(lambda: pagerduty.events and slack.channel_messages("C0PRODALERTS"))
    send(service, sns_signer, alarm("prod-db-cpu", "OK", T0 + timedelta(minutes=4)))
    wait_for(lambda: len(pagerduty.events) == 2 and slack.calls_to("chat.update"))
    wait_for(lambda: outbox_empty(service))

    [message] = slack.channel_messages("C0PRODALERTS")
    assert len(slack.calls_to("chat.postMessage")) == 2  # the alarm and one threaded reply
    assert "OK" in message.text and message.updates == 1
    [reply] = slack.thread("C0PRODALERTS", message.ts)
    assert "ALARM → OK" in reply.text
    trigger, resolve = pagerduty.events
    assert resolve["event_action"] == "resolve"
    assert resolve["dedup_key"] == trigger["dedup_key"]
    [incident] = pagerduty.incidents.values()
    assert incident["status"] == "resolved"
    with service.runtime.sessions() as db:
        [row] = db.scalars(sa.select(Incident)).all()
        assert row.status == "resolved" and row.alarm_state == "OK"
        kinds = [
            e.to_state for e in db.scalars(sa.select(IncidentEvent).order_by(IncidentEvent.id))
        ]
        assert kinds == ["ALARM", "OK"]


def test_default_route_posts_without_paging(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    send(service, sns_signer, alarm("staging-queue-depth", "ALARM", T0))
    wait_for(lambda: slack.channel_messages("C0ALERTS"))
    wait_for(lambda: outbox_empty(service))
    assert pagerduty.events == []
    assert slack.channel_messages("C0PRODALERTS") == []


def test_message_that_is_not_an_alarm_is_posted_as_a_notice(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    assert (
        send(service, sns_signer, "Backup finished: 42 snapshots", subject="Nightly backup") == 200
    )
    [notice] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    assert "Nightly backup" in notice.text and "42 snapshots" in notice.text


def test_late_transition_is_recorded_but_not_applied(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    send(service, sns_signer, alarm("prod-api-latency", "ALARM", T0 + timedelta(minutes=5)))
    wait_for(lambda: pagerduty.events)
    # An OK from before the ALARM arrives late: the incident stays open.
    send(service, sns_signer, alarm("prod-api-latency", "OK", T0))
    wait_for(lambda: outbox_empty(service))
    with service.runtime.sessions() as db:
        [incident] = db.scalars(sa.select(Incident)).all()
        assert incident.status == "open" and incident.alarm_state == "ALARM"
        kinds = [e.kind for e in db.scalars(sa.select(IncidentEvent).order_by(IncidentEvent.id))]
        assert kinds == ["alarm_state", "late_transition"]
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]
