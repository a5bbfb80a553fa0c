"""Delivery that loses nothing: Slack 429s, 500s and hangs, PagerDuty outages."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bot.cli import main
from bot.incidents.models import Incident
from bot.outbox.models import SLACK_REPLY, Delivery
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import TOPIC_ARN
from tests.incidents.helpers import command, incident_message, only_incident, send_alarm
from tests.outbox.cli_admin import as_cli_admin
from tests.support import LiveService, wait_for

T0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def fire(service: LiveService, signer: SnsSigner, name: str, state: str, minute: int) -> None:
    message = alarm_message(name=name, state=state, at=T0 + timedelta(minutes=minute))
    answer = service.post("/sns", content=body(signer.notification(message, topic_arn=TOPIC_ARN)))
    assert answer.status_code == 200, answer.text


def settled(service: LiveService) -> bool:
    with service.runtime.sessions() as db:
        return db.scalar(sa.select(sa.func.count()).where(Delivery.status == "pending")) == 0


def assert_exactly_once(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    """One Slack message per incident, one PagerDuty incident per paged incident, nothing dead."""
    with service.runtime.sessions() as db:
        incidents = db.scalars(sa.select(Incident)).all()
        dead = db.scalars(sa.select(Delivery).where(Delivery.status == "dead")).all()
    assert dead == []
    top_level = [m for m in slack.all_messages() if m.thread_ts is None]
    keys = Counter((m.metadata or {}).get("event_payload", {}).get("delivery") for m in top_level)
    assert all(count == 1 for count in keys.values()), keys
    assert len(top_level) == len(incidents)
    for incident in incidents:
        if incident.paged:
            assert len(pagerduty.incidents_for(incident.dedup_key)) == 1, incident.dedup_key


def test_slack_429_then_500_for_a_while(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    slack.faults.fail_next(3, status=429, retry_after_s=1, calls=("chat.",))
    slack.faults.fail_for(3, status=500, calls=("chat.",))
    for n in range(5):
        fire(service, sns_signer, f"prod-svc-{n}", "ALARM", 0)
    for n in range(5):
        fire(service, sns_signer, f"prod-svc-{n}", "OK", 5)
    wait_for(lambda: settled(service), timeout_s=60)

    assert_exactly_once(service, slack, pagerduty)
    assert len(slack.channel_messages("C0PRODALERTS")) == 5
    for message in slack.channel_messages("C0PRODALERTS"):
        assert "OK" in message.text  # every message ended in its latest state
        assert len(slack.thread("C0PRODALERTS", message.ts)) == 1
    failed = [c for c in slack.calls if not c.ok]
    assert failed == []  # faults are served before the emulator records a call
    assert Counter(e["event_action"] for e in pagerduty.events) == {"trigger": 5, "resolve": 5}


def test_retry_after_is_honoured(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    slack.faults.fail_next(1, status=429, retry_after_s=2, calls=("chat.postMessage",))
    fire(service, sns_signer, "prod-a", "ALARM", 0)
    first = service.runtime.clock.now()
    wait_for(lambda: slack.calls_to("chat.postMessage"), timeout_s=20)
    waited = slack.calls_to("chat.postMessage")[0].at - first.timestamp()
    assert waited >= 1.9


def test_pagerduty_down_then_back(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    pagerduty.faults.down_for(4)
    for n in range(3):
        fire(service, sns_signer, f"prod-db-{n}", "ALARM", 0)
    wait_for(
        lambda: len(slack.channel_messages("C0PRODALERTS")) == 3
    )  # Slack is not held up by PagerDuty
    assert pagerduty.events == []
    wait_for(lambda: settled(service), timeout_s=60)
    assert_exactly_once(service, slack, pagerduty)
    assert len(pagerduty.incidents) == 3


def test_a_post_that_timed_out_but_landed_is_not_posted_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # Slack takes the message but answers after the client gave up (request_timeout_s is 2),
    # and before the claim's lease (5 s) lets anyone send it again.
    slack.faults.hang_next(1, seconds=3.0, calls=("chat.postMessage",))
    fire(service, sns_signer, "prod-slow", "ALARM", 0)
    wait_for(lambda: settled(service), timeout_s=60)
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    assert slack.calls_to("conversations.history")  # it looked before posting again
    assert_exactly_once(service, slack, pagerduty)


def test_a_post_whose_look_back_is_rate_limited_looks_again_instead_of_posting_blind(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # The post lands but its answer is lost; the next attempt's look is refused by a 429
    # (as in a storm, when many retries look back at once). It must look again later.
    slack.faults.hang_next(1, seconds=3.0, calls=("chat.postMessage",))
    slack.faults.fail_next(1, status=429, retry_after_s=1, calls=("conversations.history",))
    fire(service, sns_signer, "prod-slow", "ALARM", 0)
    wait_for(lambda: settled(service), timeout_s=60)
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    assert len(slack.calls_to("conversations.history")) == 1  # the look after the 429
    assert_exactly_once(service, slack, pagerduty)


def test_a_thread_reply_waiting_to_retry_is_not_overtaken_by_the_next(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    # An incident no route pages for: its notes reach the thread straight away.
    send_alarm(service, sns_signer, "staging-queue-depth", "ALARM")
    incident = wait_for(lambda: only_incident(service, "staging-queue-depth"))
    message = wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: settled(service))
    slack.faults.fail_next(1, status=500, calls=("chat.postMessage",))
    command(service, "/incident", f"note {incident.id} first", response_url=slack.response_url())

    def backing_off() -> bool:
        with service.runtime.sessions() as db:
            failed = sa.select(Delivery).where(Delivery.kind == SLACK_REPLY, Delivery.attempts >= 1)
            return db.scalars(failed).first() is not None

    wait_for(backing_off)
    command(service, "/incident", f"note {incident.id} second", response_url=slack.response_url())
    wait_for(lambda: settled(service))
    replies = [m.text for m in slack.thread(message.channel, message.ts)]
    assert [r.rsplit(": ", 1)[1] for r in replies] == ["first", "second"]


def test_a_message_deleted_in_slack_is_posted_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    fire(service, sns_signer, "prod-x", "ALARM", 0)
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    wait_for(lambda: settled(service))
    slack.messages["C0PRODALERTS"].remove(message)  # someone deleted it
    fire(service, sns_signer, "prod-x", "OK", 3)
    wait_for(lambda: settled(service), timeout_s=30)
    [again] = slack.channel_messages("C0PRODALERTS")
    assert again.ts != message.ts and "OK" in again.text


def test_unknown_channel_is_abandoned_not_retried_forever(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator
) -> None:
    del slack.channels["C0PRODALERTS"]
    fire(service, sns_signer, "prod-y", "ALARM", 0)
    wait_for(lambda: settled(service), timeout_s=30)
    with service.runtime.sessions() as db:
        dead = db.scalars(sa.select(Delivery).where(Delivery.status == "dead")).all()
    assert [d.last_error for d in dead if d.kind == "slack.message"] == ["channel_not_found"]


def test_abandoned_deliveries_can_be_sent_again(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    del slack.channels["C0PRODALERTS"]
    fire(service, sns_signer, "prod-z", "ALARM", 0)
    wait_for(lambda: settled(service), timeout_s=30)
    # `outbox retry` acts as an admin (`outbox status` needs only the database).
    as_cli_admin(
        monkeypatch, tmp_path, database_url=service.runtime.settings.effective_database_url
    )
    assert main(["outbox", "status"]) == 0
    status = capsys.readouterr().out
    assert "slack.message      dead       1" in status
    assert "channel_not_found" in status

    slack.add_channel("C0PRODALERTS", "prod-alerts")  # the channel is back
    assert main(["outbox", "retry"]) == 0
    assert "1 abandoned deliveries are pending again" in capsys.readouterr().out
    wait_for(lambda: slack.channel_messages("C0PRODALERTS"), timeout_s=10)
