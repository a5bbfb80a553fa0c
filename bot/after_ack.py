"""The work a Slack command or click does after its acknowledgement, in the order it came.

Listeners acknowledge first and hand everything else here, so an
acknowledgement never waits for another request's work (only, like everything,
for its share of the machine). The work runs on a fixed pool of threads sized
for the machine (`workers_for_this_machine`), which takes pieces strictly in
the order they arrived, so each click's effect waits only for the pieces
queued before it and nothing ever slows the pool down as a whole. Each piece is
written down in a journal (bot/inbound/after_ack_journal.py) before its ack
leaves and crossed out once done, so work lost with a crashed instance is
answered for.

(Bolt runs a listener whole in one of its threads and answers Slack only once
`ack()` was called in it: work done in those threads would make later
acknowledgements wait for a free thread. The pool's size bounds what the work
can take from acknowledgements, and nothing pauses it: see
docs/architecture.md, "Work behind acks".)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger(__name__)

# Threads per core: a click's work mostly waits on the database, Slack or
# PagerDuty (and holds no interpreter then), so a few per core keep the cores
# busy without letting the work crowd out acknowledgements.
PER_CORE = 4
# However large the machine: each thread may hold a database connection of the
# main pool (10 + 10 overflow), which the intake and the acknowledgements need too.
MOST = 16


def workers_for_this_machine(cores: int | None = None) -> int:
    """The pool's size: `PER_CORE` threads for each core this process may use, `MOST` at most."""
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
    return max(2, min(MOST, PER_CORE * cores))


class _Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class _Gauge(Protocol):
    def set_function(self, f: Callable[[], float]) -> None: ...


class Meters(Protocol):
    """What of bot/observability/metrics.py's Metrics the pool feeds (a layer above it)."""

    @property
    def after_ack_wait(self) -> _Histogram: ...
    @property
    def after_ack_queued(self) -> _Gauge: ...
    @property
    def slack_acks_pending(self) -> _Gauge: ...


class Journal(Protocol):
    def write(self, what: str, response_url: str | None) -> str: ...
    def cross_out(self, key: str) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class AfterAck:
    def __init__(
        self,
        workers: int | None = None,
        *,
        journal: Journal | None = None,
        metrics: Meters | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.workers = workers or workers_for_this_machine()
        # A ThreadPoolExecutor's queue is first in, first out: the arrival order.
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="after-ack")
        self._journal = journal
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._queued = 0
        self._acknowledging = 0
        if metrics is not None:
            metrics.after_ack_queued.set_function(lambda: self._queued)
            metrics.slack_acks_pending.set_function(lambda: self._acknowledging)

    @contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around the handling of a Slack request until its acknowledgement is ready.

        Only counted (opsbot_slack_acks_pending): the pool does not look at it.
        """
        with self._lock:
            self._acknowledging += 1
        try:
            yield
        finally:
            with self._lock:
                self._acknowledging -= 1

    def run(self, what: str, work: Callable[[], None], *, response_url: str | None) -> None:
        """Queue `work` for the request that `response_url` answers.

        `what` names it in the log if it fails, and to the person if the
        instance dies before it is done (never the user's text).
        """
        key = self._journal.write(what, response_url) if self._journal else None
        with self._lock:
            self._queued += 1
        self._pool.submit(self._guarded, what, work, key, self._clock())

    def start(self) -> None:
        if self._journal is not None:
            self._journal.start()

    def stop(self) -> None:
        """Finish the work queued (SIGTERM: ECS waits its stop timeout for it), then stop."""
        self._pool.shutdown(wait=True)
        if self._journal is not None:
            self._journal.stop()

    def _guarded(
        self, what: str, work: Callable[[], None], key: str | None, queued_at: float
    ) -> None:
        with self._lock:
            self._queued -= 1
        if self._metrics is not None:
            self._metrics.after_ack_wait.observe(max(0.0, self._clock() - queued_at))
        try:
            work()
        except Exception:
            log.exception("%s failed after its acknowledgement", what)
        finally:
            if self._journal is not None and key is not None:
                self._journal.cross_out(key)
