"""`/oncall`, `@opsbot oncall` (with Slack's retries) and the daily handoff."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import Config, Handoff, parse_config
from bot.inbound import service as inbound
from bot.inbound.models import SLACK_EVENT
from bot.oncall.jobs import handoff_key, next_run
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET, TEST_CONFIG
from tests.incidents.helpers import command, responses_to
from tests.support import LiveService, event_body, slack_headers, wait_for

ONCALL_CONFIG: dict[str, Any] = {
    **copy.deepcopy(TEST_CONFIG),
    "oncall": {
        "teams": {"payments": {"escalation_policies": ["PPAY"]}},
        "handoffs": [
            {"channel": "C0ALERTS", "at": "09:00", "timezone": "Europe/Berlin", "team": "payments"}
        ],
    },
}


@pytest.fixture
def oncall_config() -> Config:
    return parse_config(ONCALL_CONFIG)


@pytest.fixture
def shifts(pagerduty: PagerDutyEmulator) -> datetime:
    """Payments: Alice on call until two hours from now, then Carol (not in Slack) for a day."""
    return add_shifts(pagerduty, now=datetime.now(UTC).replace(microsecond=0))


def add_shifts(pagerduty: PagerDutyEmulator, *, now: datetime) -> datetime:
    change = now + timedelta(hours=2)
    pagerduty.add_user("PCAROL", "Carol Example", "carol@example.com")
    pagerduty.add_escalation_policy("PPAY", "Payments")
    pagerduty.add_schedule("PPAYWEEK", "Payments weekly")
    pagerduty.add_oncall(
        policy_id="PPAY",
        level=1,
        user_id="PALICE",
        schedule_id="PPAYWEEK",
        start=now - timedelta(days=1),
        end=change,
    )
    pagerduty.add_oncall(
        policy_id="PPAY",
        level=1,
        user_id="PCAROL",
        schedule_id="PPAYWEEK",
        start=change,
        end=change + timedelta(days=1),
    )
    pagerduty.add_oncall(policy_id="PPAY", level=2, user_id="PBOB")
    return change


@pytest.fixture
def oncall_service(
    settings: Settings, oncall_config: Config, make_service: Callable[..., LiveService]
) -> LiveService:
    """A service answering `/oncall`, with no handoff: one whose time has passed today
    would run at start (nothing posted for today yet) and ask PagerDuty too."""
    oncall = oncall_config.oncall.model_copy(update={"handoffs": []})
    return make_service(settings, oncall_config.model_copy(update={"oncall": oncall}))


def ask(service: LiveService, slack: SlackEmulator, text: str) -> dict[str, Any]:
    url = slack.response_url()
    answer = command(service, "/oncall", text, response_url=url, channel_id="G0PRIVATE")
    assert answer.elapsed.total_seconds() < 3
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert reply["response_type"] == "ephemeral"
    return reply


def test_oncall_shows_every_policy_level_with_slack_mentions(
    oncall_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    reply = ask(oncall_service, slack, "")
    text = str(reply["blocks"])
    assert "*Production*" in text
    assert "*Level 1*: <@U0ALICE> (Primary) (always on call)" in text
    assert "*Level 2*: <@U0BOB> (always on call)" in text
    [call] = [c for c in pagerduty.rest_calls if c["path"] == "/oncalls"]
    assert call["query"]["since"] and call["query"]["until"]


def test_oncall_for_a_team_shows_who_is_next(
    oncall_service: LiveService, slack: SlackEmulator, shifts: datetime
) -> None:
    text = str(ask(oncall_service, slack, "payments")["blocks"])
    assert "On call for *payments*" in text
    level_1 = next(line for line in text.split("\\n") if "*Level 1*" in line)
    assert f"<@U0ALICE> (Payments weekly) until <!date^{int(shifts.timestamp())}^" in level_1
    # Carol has no Slack user with her email: her PagerDuty name is shown.
    assert (
        f"next: Carol Example (Payments weekly) from <!date^{int(shifts.timestamp())}^" in level_1
    )
    assert "Production" not in text


def test_oncall_for_a_schedule_or_policy_by_name(
    oncall_service: LiveService, slack: SlackEmulator, shifts: datetime
) -> None:
    by_schedule = str(ask(oncall_service, slack, "Primary")["blocks"])
    assert "Primary (schedule)" in by_schedule and "<@U0ALICE>" in by_schedule
    assert "Level 2" not in by_schedule  # only the schedule's own entries
    by_policy = str(ask(oncall_service, slack, "production")["blocks"])
    assert "Production (escalation policy)" in by_policy and "*Level 2*: <@U0BOB>" in by_policy


def test_oncall_for_an_unknown_name_says_what_exists(
    oncall_service: LiveService, slack: SlackEmulator
) -> None:
    reply = ask(oncall_service, slack, "nope")
    assert (
        reply["text"]
        == "No team, schedule or escalation policy is called `nope`. Teams: `payments`."
    )


def test_oncall_when_pagerduty_fails(
    oncall_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    pagerduty.faults.fail_next(4, status=500, calls=("/oncalls",))
    reply = ask(oncall_service, slack, "payments")
    assert reply["text"].startswith(":warning: Cannot tell who is on call for *payments*")


def user_message(slack: SlackEmulator, channel: str, ts: str, text: str) -> None:
    with slack.lock:
        slack.messages[channel].append(
            Message(channel=channel, ts=ts, user="U0ALICE", text=text, blocks=None)
        )


def mention_event(ts: str, text: str) -> dict[str, Any]:
    return {
        "type": "app_mention",
        "user": "U0ALICE",
        "text": text,
        "ts": ts,
        "channel": "C0ALERTS",
        "event_ts": ts,
    }


def deliver(service: LiveService, body: str, retry: int | None = None) -> int:
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": "application/json"}
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    return service.post("/slack/events", content=body, headers=headers).status_code


def test_mention_is_answered_once_in_its_thread_whatever_slack_retries(
    oncall_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    user_message(
        slack, "C0ALERTS", "1700000000.000100", "<@U0OPSBOT> who is on call for production?"
    )
    body = event_body(
        mention_event("1700000000.000100", "<@U0OPSBOT> who is on call for production?"),
        event_id="Ev0MENTION1",
    )
    assert deliver(oncall_service, body) == 200
    assert deliver(oncall_service, body, retry=1) == 200
    [reply] = wait_for(lambda: slack.thread("C0ALERTS", "1700000000.000100"))
    assert "Production (escalation policy)" in str(reply.blocks)
    assert deliver(oncall_service, body, retry=2) == 200
    oncalls = [c for c in pagerduty.rest_calls if c["path"] == "/oncalls"]
    assert len(oncalls) == 1
    assert len(slack.thread("C0ALERTS", "1700000000.000100")) == 1


def test_retry_after_a_dead_first_attempt_is_processed_not_dropped(
    oncall_service: LiveService, slack: SlackEmulator
) -> None:
    runtime = oncall_service.runtime
    with runtime.sessions() as db:  # an attempt that claimed the event and died
        assert inbound.claim(
            db,
            source=SLACK_EVENT,
            key="Ev0MENTION2",
            now=runtime.clock.now() - timedelta(minutes=2),
            lease_s=50,
        )
        db.commit()
    user_message(slack, "C0ALERTS", "1700000000.000200", "<@U0OPSBOT> hello")
    body = event_body(
        mention_event("1700000000.000200", "<@U0OPSBOT> hello"), event_id="Ev0MENTION2"
    )
    assert deliver(oncall_service, body, retry=1) == 200
    [reply] = wait_for(lambda: slack.thread("C0ALERTS", "1700000000.000200"))
    assert "@opsbot oncall" in reply.text
    with runtime.sessions() as db:
        assert (
            inbound.claim(
                db, source=SLACK_EVENT, key="Ev0MENTION2", now=runtime.clock.now(), lease_s=50
            )
            is False
        )


def test_handoff_posts_the_next_shift_at_the_configured_local_time(
    settings: Settings, oncall_config: Config, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # 08:00 UTC is 09:00 in Berlin in November and December.
    clock = ManualClock(datetime.now(UTC).replace(hour=7, minute=30, second=0, microsecond=0))
    # The shifts follow the test's clock, not the machine's: Alice is on call at 08:00.
    add_shifts(pagerduty, now=clock.now())
    runtime = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        key = handoff_key(oncall_config.oncall.handoffs[0])
        today = clock.now().date()
        due_at = clock.now().replace(hour=8, minute=0)
        assert (f"oncall.handoff:{key}:{today.isoformat()}", due_at) in runtime.scheduler.pending()
        clock.advance(minutes=30)
        assert runtime.scheduler.run_due(clock.now()) == [
            f"oncall.handoff:{key}:{today.isoformat()}"
        ]
        [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
        text = str(message.blocks)
        assert "Shift handoff" in text and "*payments*" in text and "<@U0ALICE>" in text
        tomorrow = (today + timedelta(days=1)).isoformat()
        assert [job for job, _ in runtime.scheduler.pending()] == [
            f"oncall.handoff:{key}:{tomorrow}"
        ]
    finally:
        runtime.stop()


def test_next_handoff_follows_the_time_zone_across_daylight_saving() -> None:
    handoff = Handoff(channel="C0ALERTS", at="09:00", timezone="Europe/Berlin", team="payments")
    winter = next_run(handoff, after=datetime(2026, 3, 28, 9, 0, tzinfo=UTC))
    assert winter == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # summer time from the 29th
    same_day = next_run(handoff, after=datetime(2026, 11, 25, 7, 59, tzinfo=UTC))
    assert same_day == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def test_old_receipts_are_forgotten_at_start(
    settings: Settings, oncall_config: Config, database_url: str
) -> None:
    clock = ManualClock(datetime(2026, 11, 25, tzinfo=UTC))
    runtime = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    with runtime.sessions() as db:
        inbound.record(db, source=SLACK_EVENT, key="old", now=clock.now() - timedelta(days=8))
        inbound.record(db, source=SLACK_EVENT, key="new", now=clock.now() - timedelta(days=1))
        db.commit()
    runtime.start()
    try:
        with runtime.sessions() as db:
            assert not inbound.seen(db, source=SLACK_EVENT, key="old")
            assert inbound.seen(db, source=SLACK_EVENT, key="new")
    finally:
        runtime.stop()
