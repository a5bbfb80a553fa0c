"""The work a Slack command or click does after its acknowledgement, a few at a time.

Slack waits three seconds for the acknowledgement and then shows the person an
error; the answer may follow for thirty minutes. So listeners acknowledge in
Bolt's listener threads and hand the rest here: a flood of commands and clicks
is acknowledged at once and worked through behind, in the order it came.
(Bolt runs a listener whole in one of its ten threads and answers Slack only
once `ack()` was called in it: work done in those threads made later
acknowledgements wait for a free thread.)

The work still shares the machine with the acknowledgements. While Slack
requests are waiting for theirs, the lane keeps to a budget, the way
PostgreSQL's autovacuum keeps to its cost limit: after each piece of work it
pauses in proportion to the time the work took, so that all its threads
together are busy at most `BUSY_SHARE` of the time. Elapsed time, not the
thread's CPU time: most of a click's work is its database statements, and the
database's CPU is taken from the same cores as the acknowledgements' (on the
benchmark's two cores, quick runs gave an ack p99 ratio of 1.2x to 1.6x with a
CPU-time budget and 0.93x by elapsed time; full runs 1.34x before the flood
counted its gaps, below, and 0.96x after, with a load generator that took
most of the CPU; 1.21x once it took little: see README, Benchmarks).

A flood counts as going on until no request has been in hand for `QUIET_S`:
with 200 requests in flight most of them wait in the server's socket and event
loop, and the moments with none in Bolt's hands are gaps between them, not the
flood's end (counting only requests in hand, the lane ran more of its work in
those gaps than in its budget). Nothing waits once the flood is over, a pause
included, and under any load the work keeps moving, only slower.

A journal (bot/inbound/after_ack_journal.py) writes each piece down while it
waits, so that work lost with a crashed instance is at least answered for.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger(__name__)

# Enough that a slow call (an AWS API, PagerDuty's REST API) does not hold up
# everyone's clicks, few enough to leave the interpreter to acknowledgements.
AT_ONCE = 2
# The share of the time the lane may be busy while acknowledgements wait. At a
# fiftieth, two threads still do a click's work or two a second in a flood
# (bench/ack.py: 200 requests in flight, two thirds of them clicks); each
# click's answer then leaves from the outbox's threads, about as much again.
BUSY_SHARE = 0.02
# One piece of work that took long is not followed by a pause as long: the
# budget is kept on average, not by stopping the lane for long (and a pause
# ends soon after the flood does, however long it was).
MAX_PAUSE_S = 5.0
# How long after the last acknowledgement a flood counts as over. Between two
# requests of a flood there are milliseconds; a person's next click is seconds.
QUIET_S = 0.25


class Journal(Protocol):
    def write(self, what: str, response_url: str | None) -> str: ...
    def cross_out(self, key: str) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class AfterAck:
    def __init__(
        self,
        workers: int = AT_ONCE,
        *,
        journal: Journal | None = None,
        busy_share: float = BUSY_SHARE,
        clock: Callable[[], float] = time.perf_counter,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="after-ack")
        self._journal = journal
        # Each thread's own pause keeps the sum of all of them within the share.
        self._pause_per_busy_s = workers / busy_share - 1
        self._clock = clock
        self._pause = pause
        self._waiting = 0
        self._last_ack_s = float("-inf")
        self._lock = threading.Lock()

    @contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around the handling of a Slack request, until its acknowledgement is sent."""
        with self._lock:
            self._waiting += 1
        try:
            yield
        finally:
            with self._lock:
                self._waiting -= 1
                self._last_ack_s = self._clock()

    def run(self, what: str, work: Callable[[], None], *, response_url: str | None) -> None:
        """Queue `work` for the request that `response_url` answers.

        `what` names it in the log if it fails, and to the person if the
        instance dies before it is done (never the user's text).
        """
        key = self._journal.write(what, response_url) if self._journal else None
        self._pool.submit(self._guarded, what, work, key)

    def start(self) -> None:
        if self._journal is not None:
            self._journal.start()

    def stop(self) -> None:
        """Finish the work queued (SIGTERM: ECS waits its stop timeout for it), then stop."""
        self._pool.shutdown(wait=True)
        if self._journal is not None:
            self._journal.stop()

    def _guarded(self, what: str, work: Callable[[], None], key: str | None) -> None:
        started = self._clock()
        try:
            work()
        except Exception:
            log.exception("%s failed after its acknowledgement", what)
        finally:
            if self._journal is not None and key is not None:
                self._journal.cross_out(key)
            self._keep_to_budget(self._clock() - started)

    def _flooded(self) -> bool:
        with self._lock:
            return self._waiting > 0 or self._clock() - self._last_ack_s < QUIET_S

    def _keep_to_budget(self, busy_s: float) -> None:
        if busy_s <= 0:
            return
        until = self._clock() + min(busy_s * self._pause_per_busy_s, MAX_PAUSE_S)
        # In steps of QUIET_S at most, so that the pause ends soon after the flood does.
        while self._flooded():
            left = until - self._clock()
            if left <= 0:
                return
            self._pause(min(left, QUIET_S))
