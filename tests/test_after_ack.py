"""The lane behind Slack acknowledgements keeps to its budget during a flood of them."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from bot.after_ack import MAX_PAUSE_S, QUIET_S, AfterAck


class Time:
    """The lane's clock and pause: a pause moves the clock on, as work does."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def work(
        self, seconds: float, done: list[str] | None = None, name: str = ""
    ) -> Callable[[], None]:
        def piece() -> None:
            self.now += seconds
            if done is not None:
                done.append(name)

        return piece


def _lane(time: Time, workers: int = 1, busy_share: float = 0.25) -> AfterAck:
    # One thread unless said: pieces of work run, and read the clock, in the order queued.
    return AfterAck(workers, busy_share=busy_share, clock=time, pause=time.pause)


def test_no_pause_when_no_acknowledgement_was_asked_for() -> None:
    time = Time()
    done: list[str] = []
    lane = _lane(time)
    lane.run("first", time.work(0.004, done, "first"), response_url=None)
    lane.run("second", time.work(0.010, done, "second"), response_url=None)
    lane.stop()
    assert done == ["first", "second"]
    assert time.pauses == []


def test_pauses_in_proportion_to_the_work_while_acknowledgements_wait() -> None:
    time = Time()
    lane = _lane(time)
    with lane.acknowledging():
        lane.run("a click", time.work(0.004), response_url=None)
        lane.run("another", time.work(0.010), response_url=None)
        lane.stop()
    # A quarter of the time: 3 s of pause for each second of work.
    assert time.pauses == pytest.approx([0.012, 0.030])


def test_the_budget_is_shared_between_the_threads() -> None:
    time = Time()
    lane = _lane(time, workers=2)
    with lane.acknowledging():
        lane.run("a click", time.work(0.001), response_url=None)
        lane.stop()
    # Two threads each pausing 7x their work take a quarter between them.
    assert time.pauses == pytest.approx([0.007])


def test_a_gap_between_two_requests_of_a_flood_does_not_end_it() -> None:
    time = Time()
    lane = _lane(time)
    with lane.acknowledging():
        pass  # acknowledged; the flood's next request is not in hand yet
    lane.run("a click", time.work(0.004), response_url=None)
    lane.stop()
    assert time.pauses == pytest.approx([0.012])


def test_the_pause_ends_soon_after_the_flood_does() -> None:
    time = Time()
    lane = _lane(time, busy_share=0.05)
    with lane.acknowledging():
        pass
    lane.run("a click", time.work(0.1), response_url=None)  # owes 1.9 s of pause
    lane.stop()
    # The last acknowledgement was 0.1 s before the work ended: QUIET_S after it, no pause.
    assert sum(time.pauses) == pytest.approx(QUIET_S)
    assert all(step <= QUIET_S for step in time.pauses)


def test_no_pause_once_the_flood_is_over() -> None:
    time = Time()
    lane = _lane(time)
    with lane.acknowledging(), lane.acknowledging():
        pass
    time.now += QUIET_S
    lane.run("after the flood", time.work(0.004), response_url=None)
    lane.stop()
    assert time.pauses == []


def test_a_long_piece_of_work_is_not_followed_by_a_long_stop() -> None:
    time = Time()
    lane = _lane(time, busy_share=0.05)
    with lane.acknowledging():
        lane.run("a slow command", time.work(2.0), response_url=None)
        lane.stop()
    assert sum(time.pauses) == pytest.approx(MAX_PAUSE_S)


def test_failed_work_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    time = Time()
    lane = _lane(time)

    def broken() -> None:
        time.now += 0.002
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bot.after_ack"), lane.acknowledging():
        lane.run("a broken click", broken, response_url=None)
        lane.stop()
    assert "a broken click failed after its acknowledgement" in caplog.text
    assert time.pauses == pytest.approx([0.006])
