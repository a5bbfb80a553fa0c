"""The lane behind Slack acknowledgements keeps to its budget while acknowledgements wait."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from bot.after_ack import MAX_PAUSE_S, AfterAck


def _clock(*readings: float) -> Callable[[], float]:
    """The time the lane reads: before and after each piece of work, in turn."""
    values: Iterator[float] = iter(readings)
    return lambda: next(values)


def _lane(clock: Callable[[], float], pauses: list[float], **kwargs: float) -> AfterAck:
    # One thread: pieces of work run, and read the clock, in the order queued.
    return AfterAck(1, clock=clock, pause=pauses.append, **kwargs)


def test_no_pause_when_no_acknowledgement_waits() -> None:
    pauses: list[float] = []
    done: list[str] = []
    lane = _lane(_clock(1.0, 1.004, 2.0, 2.010), pauses, busy_share=0.25)
    lane.run("first", lambda: done.append("first"), response_url=None)
    lane.run("second", lambda: done.append("second"), response_url=None)
    lane.stop()
    assert done == ["first", "second"]
    assert pauses == []


def test_pauses_in_proportion_to_the_work_while_acknowledgements_wait() -> None:
    pauses: list[float] = []
    lane = _lane(_clock(1.0, 1.004, 2.0, 2.010), pauses, busy_share=0.25)
    with lane.acknowledging():
        lane.run("a click", lambda: None, response_url=None)
        lane.run("another", lambda: None, response_url=None)
        lane.stop()
    # A quarter of the time: 3 s of pause for each second of work.
    assert pauses == pytest.approx([0.012, 0.030])


def test_the_budget_is_shared_between_the_threads() -> None:
    pauses: list[float] = []
    lane = AfterAck(2, busy_share=0.25, clock=_clock(0.0, 0.001), pause=pauses.append)
    with lane.acknowledging():
        lane.run("a click", lambda: None, response_url=None)
        lane.stop()
    # Two threads each pausing 7x their work take a quarter between them.
    assert pauses == pytest.approx([0.007])


def test_a_long_piece_of_work_is_not_followed_by_a_long_stop() -> None:
    pauses: list[float] = []
    lane = _lane(_clock(0.0, 2.0), pauses, busy_share=0.05)
    with lane.acknowledging():
        lane.run("a slow command", lambda: None, response_url=None)
        lane.stop()
    assert pauses == [MAX_PAUSE_S]


def test_the_pause_ends_with_the_last_acknowledgement() -> None:
    pauses: list[float] = []
    lane = _lane(_clock(1.0, 1.004), pauses, busy_share=0.25)
    with lane.acknowledging(), lane.acknowledging():
        pass
    lane.run("after the flood", lambda: None, response_url=None)
    lane.stop()
    assert pauses == []


def test_failed_work_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    pauses: list[float] = []
    lane = _lane(_clock(1.0, 1.002), pauses, busy_share=0.25)

    def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bot.after_ack"), lane.acknowledging():
        lane.run("a broken click", broken, response_url=None)
        lane.stop()
    assert "a broken click failed after its acknowledgement" in caplog.text
    assert pauses == pytest.approx([0.006])
