"""opsbot's own failures reach operators: once per episode, by a path that still works."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import PD_ROUTING_KEY, SLACK_TOKEN, TEST_CONFIG
from tests.incidents.helpers import outbox_idle, send_alarm
from tests.support import LiveService, metric, wait_for


def ops_config(**changes: Any) -> Config:
    data = json.loads(json.dumps(TEST_CONFIG))
    default_channel = changes.pop("default_channel", None)
    if default_channel:
        data["alarm_routes"][-1]["channel"] = default_channel
    return parse_config({**data, **changes})


def quiet(settings: Settings) -> Settings:
    """No EMF lines by themselves: the test writes them when it looks."""
    return settings.model_copy(update={"emf_interval_s": 0.0})


def deliveries_to(service: LiveService, target: str) -> list[Delivery]:
    with service.runtime.sessions() as db:
        return list(db.scalars(sa.select(Delivery).where(Delivery.target == target)))


def test_dead_deliveries_are_announced_once_per_episode_and_counted(
    settings: Settings,
    slack: SlackEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    slack.add_channel("C0OPSROOM", "ops")
    config = ops_config(ops_channel="C0OPSROOM", default_channel="C0MISSING")
    service = make_service(quiet(settings), config)

    send_alarm(service, sns_signer, "other-disk-full", "ALARM")
    [notice] = wait_for(lambda: slack.channel_messages("C0OPSROOM"))
    assert "1 delivery was abandoned" in notice.text
    assert "slack.message" in notice.text and "channel_not_found" in notice.text

    send_alarm(service, sns_signer, "other-cpu-high", "ALARM")
    wait_for(lambda: "2 deliveries were abandoned" in notice.text)
    wait_for(lambda: outbox_idle(service))
    assert len(slack.channel_messages("C0OPSROOM")) == 1  # updated, not posted again
    assert metric(service, "opsbot_deliveries_total", target="slack", outcome="dead") == 2

    emitted: list[str] = []
    monitor = service.runtime.ops_monitor
    assert monitor is not None
    monitor.emit = emitted.append
    monitor.write_emf(datetime.now(UTC))
    plain = json.loads(emitted[0])
    assert plain["opsbot_deliveries_dead"] == 2
    monitor.write_emf(datetime.now(UTC))
    assert json.loads(emitted[len(emitted) // 2])["opsbot_deliveries_dead"] == 0  # per interval


def test_a_dead_page_is_posted_in_the_ops_channel(
    settings: Settings,
    slack: SlackEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY_PROD", "R0UNKNOWNKEY0000000000000000000000")
    slack.add_channel("C0OPSROOM", "ops")
    service = make_service(quiet(settings), ops_config(ops_channel="C0OPSROOM"))

    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM")
    [notice] = wait_for(lambda: slack.channel_messages("C0OPSROOM"))
    assert "pagerduty.event" in notice.text and "PagerDuty refused the event (400)" in notice.text
    assert metric(service, "opsbot_deliveries_total", target="pagerduty", outcome="dead") == 1


def test_an_ops_notice_that_cannot_reach_the_ops_channel_does_not_loop(
    settings: Settings,
    slack: SlackEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    config = ops_config(ops_channel="C0NOWHERE", default_channel="C0MISSING")
    service = make_service(quiet(settings), config)

    send_alarm(service, sns_signer, "other-disk-full", "ALARM")
    wait_for(lambda: [d for d in deliveries_to(service, "slack:C0NOWHERE") if d.status == "dead"])
    wait_for(lambda: outbox_idle(service))
    assert [d.status for d in deliveries_to(service, "slack:C0NOWHERE")] == ["dead"]
    assert [d.status for d in deliveries_to(service, "slack:C0MISSING")] == ["dead"]
    # Counted just after the status is committed: the count may follow the row by a moment.
    wait_for(
        lambda: metric(service, "opsbot_deliveries_total", target="slack", outcome="dead") == 2
    )
    assert [d.status for d in deliveries_to(service, "slack:C0NOWHERE")] == ["dead"]


def test_a_refused_slack_token_pages_the_ops_key_once_and_resolves_when_slack_accepts_it(
    settings: Settings,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY_OPS", PD_ROUTING_KEY)
    config = ops_config(ops_pagerduty_routing_key_env="PD_KEY_OPS")
    service = make_service(quiet(settings), config)
    assert metric(service, "opsbot_slack_auth_ok") == 1

    slack.token = "xoxb-revoked"
    send_alarm(service, sns_signer, "other-disk-full", "ALARM")
    wait_for(lambda: pagerduty.events_for("opsbot-slack_auth-1"))
    assert metric(service, "opsbot_slack_auth_ok") == 0
    [trigger] = pagerduty.events_for("opsbot-slack_auth-1")
    assert trigger["event_action"] == "trigger"
    assert "Slack refuses the bot's token" in trigger["payload"]["summary"]

    send_alarm(service, sns_signer, "other-cpu-high", "ALARM")
    wait_for(lambda: all(d.attempts for d in deliveries_to(service, "slack:C0ALERTS")))
    assert len(pagerduty.events_for("opsbot-slack_auth-1")) == 1  # once per episode
    assert not slack.channel_messages("C0ALERTS")

    slack.token = SLACK_TOKEN
    send_alarm(service, sns_signer, "other-memory", "ALARM")
    wait_for(lambda: len(pagerduty.events_for("opsbot-slack_auth-1")) == 2)
    assert pagerduty.events_for("opsbot-slack_auth-1")[1]["event_action"] == "resolve"
    assert metric(service, "opsbot_slack_auth_ok") == 1


def test_a_late_page_is_announced_once_and_its_end_too(
    settings: Settings,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    make_service: Callable[..., LiveService],
) -> None:
    slack.add_channel("C0OPSROOM", "ops")
    clock = ManualClock(datetime.now(UTC))
    config = ops_config(ops_channel="C0OPSROOM", ops_page_late_after_s=60)
    service = make_service(quiet(settings), config, clock=clock)
    monitor = service.runtime.ops_monitor
    assert monitor is not None

    pagerduty.faults.fail_for(600, status=503)
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM")
    wait_for(lambda: all(d.attempts for d in deliveries_to(service, "pd:PD_KEY_PROD")))
    monitor.tick()
    assert not slack.channel_messages("C0OPSROOM")  # due for less than the limit

    clock.advance(seconds=90)

    def late() -> list[Any]:
        monitor.tick()
        return [m for m in slack.channel_messages("C0OPSROOM") if "Pages are late" in m.text]

    [notice] = wait_for(late, interval_s=0.5)
    monitor.tick()
    clock.advance(seconds=30)
    monitor.tick()
    assert len(slack.channel_messages("C0OPSROOM")) == 1  # once per episode

    pagerduty.faults.clear()
    clock.advance(seconds=5)
    wait_for(lambda: pagerduty.events)

    def over() -> bool:
        monitor.tick()
        return "were late from" in notice.text

    wait_for(over, interval_s=0.5)
    assert len(slack.channel_messages("C0OPSROOM")) == 1
