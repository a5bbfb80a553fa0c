"""An alarm's whole path: signed SNS → /sns → incident → outbox → Slack and PagerDuty."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from bot.alarms.models import ReceivedMessage
from bot.config import parse_config
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.alarms import alarm_message, alarm_subject
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import TEST_CONFIG, TOPIC_ARN
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
    assert "&gt; 10 for 1 of 1 periods" in text  # Slack shows &gt; as >
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


def test_flapping_folds_into_one_reply_and_pages_once(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    """A flapping alarm inside the reopen window: one incident, one page, transitions folded."""
    alarms = {**TEST_CONFIG["alarms"], "reopen_window_s": 600}  # no fold window: see below
    service = make_service(settings, parse_config({**TEST_CONFIG, "alarms": alarms}))
    slack.faults.fail_for(2, status=503, calls=("chat.",))  # replies pile up while Slack is away
    for n in range(9):
        send(
            service,
            sns_signer,
            alarm("prod-flappy", "ALARM" if n % 2 == 0 else "OK", T0 + timedelta(minutes=n)),
        )
    wait_for(lambda: slack.channel_messages("C0PRODALERTS"), timeout_s=30)
    wait_for(lambda: outbox_empty(service) or pending_only_resolve(service), timeout_s=30)

    [message] = slack.channel_messages("C0PRODALERTS")
    replies = slack.thread("C0PRODALERTS", message.ts)
    assert 1 <= len(replies) < 8  # folded while Slack was down
    assert any(" times in " in r.text for r in replies)
    assert [e["event_action"] for e in pagerduty.events] == [
        "trigger"
    ]  # the re-ALARMs withdrew the resolves
    with service.runtime.sessions() as db:
        [incident] = db.scalars(sa.select(Incident)).all()
        assert incident.status == "open" and incident.transitions == 9


def pending_only_resolve(service: LiveService) -> bool:
    with service.runtime.sessions() as db:
        pending = db.scalars(sa.select(Delivery).where(Delivery.status == "pending")).all()
    return all(d.kind == "pagerduty.event" and d.payload["action"] == "resolve" for d in pending)


def test_resolve_waits_out_the_reopen_window(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    config = parse_config({**TEST_CONFIG, "alarms": {"reopen_window_s": 2}})
    service = make_service(settings, config)
    send(service, sns_signer, alarm("prod-cache", "ALARM", T0))
    wait_for(lambda: pagerduty.events and slack.channel_messages("C0PRODALERTS"))
    send(service, sns_signer, alarm("prod-cache", "OK", T0 + timedelta(minutes=1)))
    wait_for(lambda: slack.calls_to("chat.update"))
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]  # not yet
    wait_for(lambda: len(pagerduty.events) == 2, timeout_s=10)
    assert pagerduty.events[1]["event_action"] == "resolve"


def test_insufficient_data_opens_an_incident_without_paging(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    send(service, sns_signer, alarm("prod-metrics-gap", "INSUFFICIENT_DATA", T0, old_state="OK"))
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    assert "INSUFFICIENT DATA" in message.text
    wait_for(lambda: outbox_empty(service))
    assert pagerduty.events == []
    send(
        service,
        sns_signer,
        alarm(
            "prod-metrics-gap", "ALARM", T0 + timedelta(minutes=1), old_state="INSUFFICIENT_DATA"
        ),
    )
    wait_for(lambda: pagerduty.events)
    assert len(slack.channel_messages("C0PRODALERTS")) == 1  # the same incident, now paging


def test_ok_without_an_open_incident_posts_nothing(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    assert (
        send(service, sns_signer, alarm("prod-new-alarm", "OK", T0, old_state="INSUFFICIENT_DATA"))
        == 200
    )
    with service.runtime.sessions() as db:
        [received] = db.scalars(sa.select(ReceivedMessage)).all()
    assert "nothing to resolve" in received.outcome
    assert slack.all_messages() == []
