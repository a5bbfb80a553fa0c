"""A handoff that fails leaves the later days' handoffs scheduled; each posts under its own day.

The post fails through the database (the outbox's message table renamed away),
not by patching opsbot; the run goes through the scheduler, which tries it again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.oncall.jobs import HANDOFF_JOB, handoff_key
from bot.outbox.models import SlackMessage
from bot.runtime import Runtime
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from tests.oncall.test_oncall import ONCALL_CONFIG, add_shifts
from tests.scheduler.tables import table_gone
from tests.support import wait_for

# 08:00 UTC is 09:00 in Berlin, where the configured handoff is.
DUE = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


@pytest.fixture
def oncall_config() -> Config:
    return parse_config(ONCALL_CONFIG)


def job_id(config: Config, day: str) -> str:
    return f"{HANDOFF_JOB}:{handoff_key(config.oncall.handoffs[0])}:{day}"


def handoff_keys(runtime: Runtime) -> list[str]:
    with runtime.sessions() as db:
        query = sa.select(SlackMessage.key).where(SlackMessage.key.startswith("handoff:"))
        return sorted(db.scalars(query))


def test_a_handoff_whose_post_fails_leaves_tomorrows_scheduled_and_runs_again(
    settings: Settings,
    oncall_config: Config,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    clock = ManualClock(DUE - timedelta(minutes=30))
    add_shifts(pagerduty, now=clock.now())
    runtime = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        today, tomorrow = job_id(oncall_config, "2026-11-25"), job_id(oncall_config, "2026-11-26")
        assert [job for job, _ in runtime.scheduler.pending()] == [today]
        clock.advance(minutes=30)
        with table_gone(runtime.engine, "slack_messages"):
            assert runtime.scheduler.run_due(clock.now()) == [today]
        assert handoff_keys(runtime) == []
        assert tomorrow in [job for job, _ in runtime.scheduler.pending()]

        # The scheduler tries today's again; it posts today's handoff, once.
        clock.advance(seconds=30)
        assert runtime.scheduler.run_due(clock.now()) == [today]
        [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
        assert "Shift handoff" in str(message.blocks)
        assert handoff_keys(runtime) == [
            f"handoff:{handoff_key(oncall_config.oncall.handoffs[0])}:2026-11-25"
        ]
        assert runtime.scheduler.pending() == [(tomorrow, DUE + timedelta(days=1))]
    finally:
        runtime.stop()


def test_a_late_handoff_past_local_midnight_posts_under_its_own_day(
    settings: Settings,
    oncall_config: Config,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    clock = ManualClock(DUE - timedelta(minutes=30))
    add_shifts(pagerduty, now=clock.now())
    runtime = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        key = handoff_key(oncall_config.oncall.handoffs[0])
        today, tomorrow = job_id(oncall_config, "2026-11-25"), job_id(oncall_config, "2026-11-26")
        # 23:30 UTC is 00:30 on the 26th in Berlin: the 25th's run comes late.
        clock.advance(hours=16)
        assert runtime.scheduler.run_due(clock.now()) == [today]
        assert runtime.scheduler.pending() == [(tomorrow, DUE + timedelta(days=1))]
        clock.advance(hours=8, minutes=30)
        assert runtime.scheduler.run_due(clock.now()) == [tomorrow]
        wait_for(lambda: len(slack.channel_messages("C0ALERTS")) == 2)
        assert handoff_keys(runtime) == [f"handoff:{key}:2026-11-25", f"handoff:{key}:2026-11-26"]
    finally:
        runtime.stop()


def test_todays_handoff_lost_with_a_crash_is_posted_at_the_next_start_once(
    settings: Settings,
    oncall_config: Config,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # The handoff posted yesterday, which scheduled today's run.
    clock = ManualClock(DUE - timedelta(days=1, minutes=30))
    add_shifts(pagerduty, now=clock.now())
    key = handoff_key(oncall_config.oncall.handoffs[0])
    today, tomorrow = job_id(oncall_config, "2026-11-25"), job_id(oncall_config, "2026-11-26")
    crashed = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    crashed.start()
    try:
        clock.advance(minutes=30)
        assert crashed.scheduler.run_due(clock.now()) == [job_id(oncall_config, "2026-11-24")]
        wait_for(lambda: slack.channel_messages("C0ALERTS"))
        clock.advance(days=1)
        # The leader takes today's job out of the store to run it, and its task dies.
        assert crashed.scheduler.cancel(today)
    finally:
        crashed.stop()

    clock.advance(minutes=5)  # 09:05 in Berlin: a task starts
    started = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    started.start()
    try:
        assert sorted(started.scheduler.pending()) == [
            (today, DUE),
            (tomorrow, DUE + timedelta(days=1)),
        ]
        assert started.scheduler.run_due(clock.now()) == [today]
        wait_for(lambda: len(slack.channel_messages("C0ALERTS")) == 2)
        assert "Shift handoff" in str(slack.channel_messages("C0ALERTS")[-1].blocks)
        assert handoff_keys(started) == [f"handoff:{key}:2026-11-24", f"handoff:{key}:2026-11-25"]
    finally:
        started.stop()

    # Another start the same day: today's is posted, so only tomorrow's is stored.
    clock.advance(hours=3)
    again = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    again.start()
    try:
        assert again.scheduler.pending() == [(tomorrow, DUE + timedelta(days=1))]
    finally:
        again.stop()
    assert len(slack.channel_messages("C0ALERTS")) == 2


def test_a_handoff_of_an_earlier_day_is_not_posted_at_start(
    settings: Settings, oncall_config: Config, pagerduty: PagerDutyEmulator
) -> None:
    # 08:30 in Berlin on the 26th: the 25th's handoff was never posted, and is stale.
    clock = ManualClock(DUE + timedelta(days=1) - timedelta(minutes=30))
    add_shifts(pagerduty, now=clock.now())
    runtime = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        tomorrow = job_id(oncall_config, "2026-11-26")
        assert runtime.scheduler.pending() == [(tomorrow, DUE + timedelta(days=1))]
    finally:
        runtime.stop()


def test_a_handoff_pagerduty_cannot_answer_says_so_then_is_updated_when_it_can(
    settings: Settings,
    oncall_config: Config,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    clock = ManualClock(DUE - timedelta(minutes=30))
    add_shifts(pagerduty, now=clock.now())
    runtime = build_runtime(settings, oncall_config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        today = job_id(oncall_config, "2026-11-25")
        clock.advance(minutes=30)
        pagerduty.faults.fail_next(4, status=503, calls=("/oncalls",))
        assert runtime.scheduler.run_due(clock.now()) == [today]
        [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
        assert "Cannot tell who is on call" in message.text
        # The run raised: the scheduler tries today's again, and the same message
        # now says who is on call.
        assert today in [job for job, _ in runtime.scheduler.pending()]
        pagerduty.faults.clear()
        clock.advance(seconds=30)
        assert runtime.scheduler.run_due(clock.now()) == [today]
        wait_for(lambda: "Shift handoff" in str(message.blocks))
        assert len(slack.channel_messages("C0ALERTS")) == 1
    finally:
        runtime.stop()
