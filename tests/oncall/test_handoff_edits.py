"""A start does not post today's handoff again for a handoff edited or added after its time.

A handoff's key hashes its settings, so an edit makes a new key with no message
of today: without these rules a start would post today's handoff a second time.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.oncall.jobs import handoff_key
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from tests.oncall.test_handoff_failures import DUE, handoff_keys, job_id
from tests.oncall.test_oncall import ONCALL_CONFIG, add_shifts
from tests.support import wait_for

# 07:30 UTC is 08:30 in Berlin.
EARLIER = DUE - timedelta(minutes=30)


def edited(**changes: Any) -> Config:
    raw = copy.deepcopy(ONCALL_CONFIG)
    raw["oncall"]["handoffs"][0].update(changes)
    return parse_config(raw)


def post_todays(
    settings: Settings, config: Config, clock: ManualClock, slack: SlackEmulator, *, day: str
) -> None:
    """A task runs `day`'s handoff of `config` at its time, which `clock` is at."""
    runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        count = len(slack.channel_messages("C0ALERTS"))
        assert runtime.scheduler.run_due(clock.now()) == [job_id(config, day)]
        wait_for(lambda: len(slack.channel_messages("C0ALERTS")) == count + 1)
    finally:
        runtime.stop()


def test_a_handoff_moved_after_it_posted_today_is_not_posted_again(
    settings: Settings, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    config = parse_config(ONCALL_CONFIG)
    clock = ManualClock(DUE - timedelta(days=1))
    add_shifts(pagerduty, now=clock.now())
    schedule_at_start(settings, config, clock)
    post_todays(settings, config, clock, slack, day="2026-11-24")
    clock.set(DUE)
    post_todays(settings, config, clock, slack, day="2026-11-25")

    clock.advance(hours=3)  # 12:00 in Berlin: the handoff is moved to 08:30
    moved = edited(at="08:30")
    again = build_runtime(settings, moved, clock=clock, run_jobs=False)
    again.start()
    try:
        # The old key's run of tomorrow stays stored until it runs and is dropped.
        pending = [job for job, _ in again.scheduler.pending()]
        assert job_id(moved, "2026-11-26") in pending
        assert job_id(moved, "2026-11-25") not in pending
        assert again.scheduler.run_due(clock.now()) == []
    finally:
        again.stop()
    assert len(slack.channel_messages("C0ALERTS")) == 2


def test_a_handoff_added_after_its_time_posts_first_at_its_next_time(
    settings: Settings, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    clock = ManualClock(DUE + timedelta(hours=3))  # 12:00 in Berlin
    add_shifts(pagerduty, now=clock.now())
    config = parse_config(ONCALL_CONFIG)
    runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
    runtime.start()
    try:
        assert runtime.scheduler.pending() == [
            (job_id(config, "2026-11-26"), DUE + timedelta(days=1))
        ]
        assert runtime.scheduler.run_due(clock.now()) == []
        assert handoff_keys(runtime) == []
    finally:
        runtime.stop()
    assert slack.channel_messages("C0ALERTS") == []


def test_an_edit_undone_the_same_day_does_not_post_today_again(
    settings: Settings, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    config = parse_config(ONCALL_CONFIG)
    clock = ManualClock(DUE - timedelta(days=1))
    add_shifts(pagerduty, now=clock.now())
    schedule_at_start(settings, config, clock)
    post_todays(settings, config, clock, slack, day="2026-11-24")

    # Moved to 08:30 on the 24th: on the 25th it posts at 08:30, and the old key's run
    # stored for 09:00 is dropped. At 12:00 the edit is undone.
    moved = edited(at="08:30")
    clock.set(EARLIER)
    schedule_at_start(settings, moved, clock)
    runtime = build_runtime(settings, moved, clock=clock, run_jobs=False)
    runtime.start()
    try:
        assert runtime.scheduler.run_due(clock.now()) == [job_id(moved, "2026-11-25")]
        wait_for(lambda: len(slack.channel_messages("C0ALERTS")) == 2)
        clock.set(DUE)
        assert runtime.scheduler.run_due(clock.now()) == [job_id(config, "2026-11-25")]
    finally:
        runtime.stop()
    clock.set(DUE + timedelta(hours=3))
    undone = build_runtime(settings, config, clock=clock, run_jobs=False)
    undone.start()
    try:
        assert (job_id(config, "2026-11-25"), DUE) not in undone.scheduler.pending()
        assert undone.scheduler.run_due(clock.now()) == []
        key, moved_key = (
            handoff_key(config.oncall.handoffs[0]),
            handoff_key(moved.oncall.handoffs[0]),
        )
        assert handoff_keys(undone) == sorted(
            [f"handoff:{key}:2026-11-24", f"handoff:{moved_key}:2026-11-25"]
        )
    finally:
        undone.stop()
    assert len(slack.channel_messages("C0ALERTS")) == 2


def schedule_at_start(settings: Settings, config: Config, clock: ManualClock) -> None:
    """A task starts 30 minutes before `config`'s handoff and stores its run (the first day)."""
    at = clock.now()
    clock.set(at - timedelta(minutes=30))
    runtime = build_runtime(settings, config, clock=clock, run_jobs=False)
    runtime.start()
    runtime.stop()
    clock.set(at)
