"""The event loop's lateness: observed in a histogram, a warning when over the threshold."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.observability.loop_watch import LoopWatch
from bot.observability.metrics import Metrics
from tests.support import LiveService, wait_for


def _lag(metrics: Metrics, what: str) -> float:
    return metrics.registry.get_sample_value(f"opsbot_event_loop_lag_seconds_{what}") or 0.0


def test_a_loop_held_past_the_threshold_is_observed_and_warned_of(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    watch = LoopWatch(lag=metrics.event_loop_lag, warn_s=0.2, every_s=0.01)

    async def hold_the_loop() -> None:
        watching = asyncio.create_task(watch.run())
        await asyncio.sleep(0.05)
        time.sleep(0.3)  # nothing else runs on the loop meanwhile
        await asyncio.sleep(0.05)
        watching.cancel()

    with caplog.at_level(logging.WARNING, logger="bot.observability.loop_watch"):
        asyncio.run(hold_the_loop())

    # The tick due during the hold woke at least 0.3 - 0.01 s late.
    assert _lag(metrics, "count") >= 3
    assert metrics.registry.get_sample_value(
        "opsbot_event_loop_lag_seconds_bucket", {"le": "0.25"}
    ) < _lag(metrics, "count")
    [line] = [r for r in caplog.records if "ran" in r.getMessage()]
    assert getattr(line, "late_s", 0) >= 0.29
    assert getattr(line, "times", 0) == 1


def test_a_loop_late_again_within_a_minute_is_told_a_minute_later_with_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics = Metrics()
    now = [0.0]
    watch = LoopWatch(lag=metrics.event_loop_lag, warn_s=0.2, monotonic=lambda: now[0])

    with caplog.at_level(logging.WARNING, logger="bot.observability.loop_watch"):
        watch.observe(0.5)
        now[0] = 30.0
        watch.observe(0.7)
        watch.observe(0.01)  # on time: observed, not counted
        now[0] = 59.0
        watch.observe(0.3)
        assert len(caplog.records) == 1
        now[0] = 61.0
        watch.observe(0.25)

    assert _lag(metrics, "count") == 5
    told = [(getattr(r, "late_s", None), getattr(r, "times", None)) for r in caplog.records]
    # The second line: the three late since the first, the worst of them.
    assert told == [(0.5, 1), (0.7, 3)]


def test_the_served_app_watches_its_loop(service: LiveService) -> None:
    wait_for(lambda: _lag(service.runtime.metrics, "count") >= 2)
