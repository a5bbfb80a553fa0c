"""The pool behind Slack acknowledgements: sized for the machine, first come first served,
never paused while acknowledgements wait, growing only while its threads wait."""

from __future__ import annotations

import functools
import logging
import threading
import types

import pytest

import bot.after_ack as after_ack
from bot.after_ack import (
    MOST,
    PER_CORE,
    SPARE_SHARE,
    STUCK_S,
    AfterAck,
    base_for_this_machine,
    threads_to_add,
    workers_for_this_machine,
)
from bot.observability.metrics import Metrics
from tests.support import wait_for

EVENTUALLY_S = 30.0


def test_the_pool_is_sized_for_the_machine() -> None:
    assert workers_for_this_machine(1) == PER_CORE
    assert workers_for_this_machine(2) == 2 * PER_CORE
    assert workers_for_this_machine(64) == MOST
    assert (base_for_this_machine(1), base_for_this_machine(2)) == (2, 2)
    assert (base_for_this_machine(8), base_for_this_machine(64)) == (8, MOST)
    lane = AfterAck()
    assert (lane.workers, lane.most) == (base_for_this_machine(), workers_for_this_machine())
    assert lane.threads == 0  # until the first piece
    lane.stop()


def test_work_starts_in_the_order_it_arrived() -> None:
    # One thread: with more, two pieces taken in order may note their start out of it.
    lane = AfterAck(1, most=1)
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
    lane = AfterAck(3, most=3)
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


def test_threads_are_added_while_every_one_waits_and_end_when_idle() -> None:
    metrics = Metrics()
    lane = AfterAck(2, most=5, metrics=metrics, idle_s=0.2)
    gate = threading.Event()
    lock = threading.Lock()
    running = [0]

    def waits_on_io() -> None:  # holds a thread, not the interpreter (like a slow AWS call)
        with lock:
            running[0] += 1
        gate.wait(EVENTUALLY_S)

    for n in range(7):
        lane.run(f"piece {n}", waits_on_io, response_url=None)
    wait_for(lambda: running[0] == 5, timeout_s=EVENTUALLY_S)
    assert lane.threads == 5  # never beyond `most`, with two pieces still queued
    assert metrics.registry.get_sample_value("opsbot_after_ack_threads") == 5
    gate.set()
    wait_for(lambda: running[0] == 7, timeout_s=EVENTUALLY_S)
    wait_for(lambda: lane.threads == 2, timeout_s=EVENTUALLY_S)  # back to the base, not below
    lane.run("after", lambda: None, response_url=None)
    lane.stop()
    assert metrics.registry.get_sample_value("opsbot_after_ack_queued") == 0


@pytest.mark.parametrize(
    ("queued", "idle", "threads", "share", "waited_s", "added"),
    [
        (0, 0, 2, 0.0, 0.0, 0),  # nothing queued
        (3, 1, 2, 0.0, 0.0, 0),  # a thread is free: it takes the next piece
        (3, 0, 8, 0.0, 0.0, 0),  # already at the most
        (3, 0, 2, SPARE_SHARE / 2, 0.0, 3),  # the threads wait on I/O: start every queued piece
        (9, 0, 2, SPARE_SHARE / 2, 0.0, 6),  # ... up to the most
        (3, 0, 2, 1.0, 0.1, 0),  # the interpreter is busy: more threads would only contend
        (3, 0, 2, 1.0, STUCK_S, 3),  # busy, but every piece has run for long: stuck on I/O
        (3, 0, 0, 1.0, 0.0, 2),  # below the base (a thread refused): back to it, busy or not
    ],
)
def test_when_threads_are_added(
    queued: int, idle: int, threads: int, share: float, waited_s: float, added: int
) -> None:
    assert (
        threads_to_add(
            queued=queued,
            idle=idle,
            threads=threads,
            base=2,
            most=8,
            share=share,
            waited_s=waited_s,
        )
        == added
    )


@pytest.mark.parametrize("refused", [1, 2], ids=["on-submit", "by-the-watcher"])
def test_a_thread_the_host_refuses_is_not_counted_and_the_pool_goes_on(
    refused: int, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The host refuses one thread (a task's thread or memory limit), as CPython says it:
    # the one `submit` starts for the first piece, or the one the watcher adds.
    starts: list[str] = []
    refusals = [1]

    class Refused(threading.Thread):
        def start(self) -> None:
            if self.name == "after-ack":
                starts.append(self.name)
                if len(starts) == refused:
                    refusals.pop()
                    raise RuntimeError("can't start new thread")
            super().start()

    host = types.SimpleNamespace(**vars(threading))
    host.Thread = Refused
    monkeypatch.setattr(after_ack, "threading", host)
    lane = AfterAck(1, most=4, metrics=Metrics(), idle_s=30.0)
    gate = threading.Event()
    done: list[str] = []

    lane.run("first", lambda: (gate.wait(EVENTUALLY_S), done.append("first")), response_url=None)
    lane.run("second", lambda: done.append("second"), response_url=None)
    wait_for(lambda: not refusals, timeout_s=EVENTUALLY_S)  # the watcher's thread was refused
    for n in range(3):  # later work is still taken, none raises
        lane.run(f"later {n}", lambda n=n: done.append(f"later {n}"), response_url=None)
    wait_for(lambda: len(done) == 4, timeout_s=EVENTUALLY_S)  # a thread started after all
    gate.set()
    wait_for(lambda: len(done) == 5, timeout_s=EVENTUALLY_S)
    lane.stop()

    assert sorted(done) == ["first", "later 0", "later 1", "later 2", "second"]
    assert "no thread could be started" in caplog.text
