"""The pool behind Slack acknowledgements: sized for the machine, first come first served,
never paused while acknowledgements wait."""

from __future__ import annotations

import functools
import logging
import threading

import pytest

from bot.after_ack import MOST, PER_CORE, AfterAck, workers_for_this_machine
from bot.observability.metrics import Metrics

EVENTUALLY_S = 30.0


def test_the_pool_is_sized_for_the_machine() -> None:
    assert workers_for_this_machine(1) == PER_CORE
    assert workers_for_this_machine(2) == 2 * PER_CORE
    assert workers_for_this_machine(64) == MOST
    assert 2 <= AfterAck().workers <= MOST


def test_work_starts_in_the_order_it_arrived() -> None:
    # One thread: with more, two pieces taken in order may note their start out of it.
    lane = AfterAck(1)
    gate = threading.Event()
    started: list[int] = []
    lock = threading.Lock()

    def piece(n: int) -> None:
        with lock:
            started.append(n)
        gate.wait(EVENTUALLY_S)

    for n in range(12):
        lane.run(f"piece {n}", functools.partial(piece, n), response_url=None)
    gate.set()
    lane.stop()
    assert started == list(range(12))


def test_no_more_than_the_pool_runs_at_once() -> None:
    lane = AfterAck(3)
    lock = threading.Lock()
    running = [0]
    most = [0]
    three_in = threading.Barrier(3)

    def piece() -> None:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        three_in.wait(EVENTUALLY_S)  # the pool's three threads are all busy at once
        with lock:
            running[0] -= 1

    for n in range(9):
        lane.run(f"piece {n}", piece, response_url=None)
    lane.stop()
    assert most[0] == 3


def test_work_runs_while_acknowledgements_are_pending() -> None:
    metrics = Metrics()
    lane = AfterAck(1, metrics=metrics)
    done = threading.Event()
    with lane.acknowledging(), lane.acknowledging():
        assert metrics.registry.get_sample_value("opsbot_slack_acks_pending") == 2
        lane.run("a click", done.set, response_url=None)
        # Not paused, not waiting for the acknowledgements: done while they are pending.
        assert done.wait(EVENTUALLY_S)
    assert metrics.registry.get_sample_value("opsbot_slack_acks_pending") == 0
    lane.stop()
    assert metrics.registry.get_sample_value("opsbot_after_ack_wait_seconds_count") == 1


def test_the_queue_is_counted() -> None:
    metrics = Metrics()
    lane = AfterAck(1, metrics=metrics)
    gate = threading.Event()

    def hold() -> None:
        gate.wait(EVENTUALLY_S)

    lane.run("holds the thread", hold, response_url=None)
    lane.run("waits", lambda: None, response_url=None)
    lane.run("waits too", lambda: None, response_url=None)
    queued = metrics.registry.get_sample_value("opsbot_after_ack_queued")
    assert queued is not None and queued >= 2
    gate.set()
    lane.stop()
    assert metrics.registry.get_sample_value("opsbot_after_ack_queued") == 0


def test_failed_work_is_logged_and_the_next_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    lane = AfterAck(1)
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bot.after_ack"):
        lane.run("a broken click", broken, response_url=None)
        lane.run("the next click", lambda: done.append("next"), response_url=None)
        lane.stop()
    assert "a broken click failed after its acknowledgement" in caplog.text
    assert done == ["next"]
