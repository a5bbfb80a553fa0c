"""The work a Slack command or click does after its acknowledgement, in the order it came.

Listeners acknowledge first and hand everything else here, so an
acknowledgement never waits for another request's work (only, like everything,
for its share of the machine). The work runs on a pool of threads that takes
pieces strictly in the order they arrived, one thread a core while the pieces
keep the interpreter busy, growing (to four a core) only while every thread
waits on the network or the database with work queued and the interpreter has
room; so each click's effect waits only for the pieces queued before it, and
nothing ever slows the pool down as a whole. Each piece is noted in a journal
(bot/inbound/after_ack_journal.py), written down within a fifth of a second,
and crossed out once done, so work lost with a crashed instance is answered
for; a piece that raises is answered for as well where it has a response_url,
and counted.

(Bolt runs a listener whole in one of its threads and answers Slack only once
`ack()` was called in it: work done in those threads would make later
acknowledgements wait for a free thread. Threads beyond one a core buy nothing
while the work holds the interpreter, and each runnable one costs the others a
handoff of it at every statement or call, acknowledgements included: see
docs/architecture.md, "Work behind acks".)
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

log = logging.getLogger(__name__)

# Threads always there: one a core (two at least, so that one slow piece never
# holds up the next alone).
BASE_PER_CORE = 1
# At most, while the threads wait on I/O: a click's work mostly waits on the
# database, Slack or PagerDuty, and holds no interpreter then.
PER_CORE = 4
# However large the machine: each thread may hold a database connection of the
# main pool (10 + 10 overflow), which the intake and the acknowledgements need too.
MOST = 16
# How often the pool looks at itself while work is queued and no thread is free.
CHECK_S = 0.1
# The process used less than this share of a core over the last check: its
# threads wait on I/O, so more of them would start the queued work sooner.
SPARE_SHARE = 0.5
# Every busy thread has been on its piece this long: they wait (an AWS call
# timing out), whatever the interpreter's load; more threads let the queue move.
STUCK_S = 2.0
# A thread beyond the base that found nothing to do for this long ends.
IDLE_S = 10.0


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def base_for_this_machine(cores: int | None = None) -> int:
    """The threads always there: `BASE_PER_CORE` for each core this process may use."""
    return max(2, min(MOST, BASE_PER_CORE * (cores or _cores())))


def workers_for_this_machine(cores: int | None = None) -> int:
    """The most threads: `PER_CORE` for each core this process may use, `MOST` at most."""
    return max(2, min(MOST, PER_CORE * (cores or _cores())))


def threads_to_add(
    *, queued: int, idle: int, threads: int, base: int, most: int, share: float, waited_s: float
) -> int:
    """How many threads the pool starts now (0 when more would not help)."""
    if queued == 0 or idle > 0 or threads >= most:
        return 0
    if threads < base:
        # Below the base (a thread the host refused): work waits with nobody to take it.
        return min(queued, base - threads)
    if share < SPARE_SHARE or waited_s >= STUCK_S:
        return min(queued, most - threads)
    return 0


class _Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class _Gauge(Protocol):
    def set_function(self, f: Callable[[], float]) -> None: ...


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Meters(Protocol):
    """What of bot/observability/metrics.py's Metrics the pool feeds (a layer above it)."""

    @property
    def after_ack_wait(self) -> _Histogram: ...
    @property
    def after_ack_queued(self) -> _Gauge: ...
    @property
    def after_ack_threads(self) -> _Gauge: ...
    @property
    def slack_acks_pending(self) -> _Gauge: ...
    @property
    def after_ack_failures(self) -> _Counter: ...
    @property
    def after_ack_oldest_running(self) -> _Gauge: ...


class Journal(Protocol):
    def write(self, what: str, response_url: str | None) -> str: ...
    def begin(self, key: str) -> bool: ...
    def cross_out(self, key: str) -> None: ...
    def failed(self, key: str) -> None: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


class _Pool:
    """Threads taking pieces first in, first out: `base` always, up to `most` while they wait."""

    def __init__(
        self, base: int, most: int, *, idle_s: float, cpu: Callable[[], float] = time.process_time
    ) -> None:
        self.base, self.most = base, max(base, most)
        self._idle_s = idle_s
        self._cpu = cpu
        self._cond = threading.Condition()
        self._queue: deque[Callable[[], None]] = deque()
        self._threads: set[threading.Thread] = set()
        self._idle = 0
        self._started: dict[int, float] = {}  # busy thread -> when it took its piece
        self._closed = False
        self._backlog = threading.Event()  # work queued with no thread free: the watcher looks
        # Threads start with the first pieces (a runtime built and never used starts none).
        self._watcher = threading.Thread(target=self._watch, name="after-ack-watch", daemon=True)

    @property
    def threads(self) -> int:
        return len(self._threads)

    def submit(self, piece: Callable[[], None]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("the pool behind acknowledgements is stopped")
            self._queue.append(piece)
            if self._watcher.ident is None:
                self._start_watcher()
            if self._idle:
                self._cond.notify()
            elif len(self._threads) < self.base:
                self._spawn()
            if len(self._queue) > self._idle:
                self._backlog.set()

    def shutdown(self) -> None:
        """Run what is queued, then end every thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._backlog.set()
        # Until none is left: a thread a piece ended has another take its place.
        while True:
            with self._cond:
                threads = list(self._threads)
            if not threads:
                break
            for thread in threads:
                thread.join()
        if self._watcher.is_alive():
            self._watcher.join()

    def _start_watcher(self) -> None:
        try:
            self._watcher.start()
        except RuntimeError:
            # The host refused a thread: the queued work waits for the next submit to
            # try again, and the pool's own threads still take it.
            self._watcher = threading.Thread(
                target=self._watch, name="after-ack-watch", daemon=True
            )
            log.warning("work behind acks: the pool's watcher could not start a thread")

    def _spawn(self) -> bool:
        """Start a thread, counted once it runs; False when the host refuses one (a task's
        thread or memory limit), which the watcher tries again while work waits."""
        # Called holding the condition's lock: the thread takes no piece before it is counted.
        thread = threading.Thread(target=self._work, name="after-ack", daemon=True)
        try:
            thread.start()
        except RuntimeError as exc:
            log.warning(
                "work behind acks: no thread could be started (%s); %d running, %d queued",
                exc,
                len(self._threads),
                len(self._queue),
            )
            self._backlog.set()
            return False
        self._threads.add(thread)
        return True

    def _take(self) -> Callable[[], None] | None:
        """The next piece, or None when this thread is to end (stopped, or idle beyond the base)."""
        me = threading.current_thread()
        with self._cond:
            self._idle += 1
            try:
                while not self._queue:
                    if self._closed:
                        self._threads.discard(me)
                        return None
                    woken = self._cond.wait(self._idle_s)
                    if not woken and not self._queue and len(self._threads) > self.base:
                        self._threads.discard(me)  # under the lock: never below the base
                        return None
                self._started[threading.get_ident()] = time.monotonic()
                return self._queue.popleft()
            finally:
                self._idle -= 1

    def _work(self) -> None:
        me = threading.current_thread()
        ended = False
        try:
            while (piece := self._take()) is not None:
                try:
                    # AfterAck's pieces catch and log their own errors, and let only a
                    # BaseException (SystemExit, a cancellation) go on up, ending this thread.
                    piece()
                finally:
                    with self._cond:
                        self._started.pop(me.ident or 0, None)
            ended = True
        finally:
            with self._cond:
                self._threads.discard(me)
                # Ended by a piece: another thread takes its place, or the work queued
                # behind it would wait for the next submit (or, when stopping, forever).
                if not ended and (
                    self._queue or (not self._closed and len(self._threads) < self.base)
                ):
                    self._spawn()

    def _watch(self) -> None:
        while True:
            self._backlog.wait()
            if self._closed:
                return
            cpu, at = self._cpu(), time.monotonic()
            time.sleep(CHECK_S)
            share = (self._cpu() - cpu) / max(time.monotonic() - at, 1e-6)
            with self._cond:
                if self._closed:
                    return
                now = time.monotonic()
                youngest = max(self._started.values(), default=now)
                adding = threads_to_add(
                    queued=len(self._queue),
                    idle=self._idle,
                    threads=len(self._threads),
                    base=self.base,
                    most=self.most,
                    share=share,
                    waited_s=now - youngest,
                )
                added = 0
                while added < adding and self._spawn():
                    added += 1
                if not self._queue or len(self._threads) >= self.most:
                    self._backlog.clear()
            if added:
                log.info(
                    "work behind acks: %d threads (%d added: %d queued, the process used "
                    "%.0f%% of a core, the youngest piece running for %.1f s)",
                    len(self._threads),
                    added,
                    len(self._queue),
                    share * 100,
                    now - youngest,
                )


class AfterAck:
    def __init__(
        self,
        workers: int | None = None,
        *,
        most: int | None = None,
        journal: Journal | None = None,
        metrics: Meters | None = None,
        clock: Callable[[], float] = time.perf_counter,
        idle_s: float = IDLE_S,
    ) -> None:
        self.workers = workers or base_for_this_machine()
        self.most = max(self.workers, most or workers_for_this_machine())
        self._pool = _Pool(self.workers, self.most, idle_s=idle_s)
        self._journal = journal
        self._metrics = metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._queued = 0
        self._acknowledging = 0
        self._running: dict[int, float] = {}  # by thread: when its piece started (`clock`)
        if metrics is not None:
            metrics.after_ack_oldest_running.set_function(self._oldest_running_s)
            metrics.after_ack_queued.set_function(lambda: self._queued)
            metrics.after_ack_threads.set_function(lambda: self._pool.threads)
            metrics.slack_acks_pending.set_function(lambda: self._acknowledging)

    @property
    def threads(self) -> int:
        """The pool's threads now."""
        return self._pool.threads

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
        queued_at = self._clock()
        self._pool.submit(lambda: self._guarded(what, work, key, queued_at))

    def start(self) -> None:
        if self._journal is not None:
            self._journal.start()

    def _oldest_running_s(self) -> float:
        with self._lock:
            oldest = min(self._running.values(), default=None)
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def stop(self) -> None:
        """Finish the work queued (SIGTERM: ECS waits its stop timeout for it), then stop."""
        self._pool.shutdown()
        if self._journal is not None:
            self._journal.stop()

    def _guarded(
        self, what: str, work: Callable[[], None], key: str | None, queued_at: float
    ) -> None:
        with self._lock:
            self._queued -= 1
        if self._metrics is not None:
            self._metrics.after_ack_wait.observe(max(0.0, self._clock() - queued_at))
        if self._journal is not None and key is not None and not self._journal.begin(key):
            return  # not to be started: the journal answered it, or another instance did
        me = threading.get_ident()
        with self._lock:
            self._running[me] = self._clock()
        # A piece is done only once `work()` has returned: a BaseException (SystemExit,
        # a cancellation) is answered and counted as a failure, then goes on up.
        failed = True
        try:
            work()
            failed = False
        except BaseException as exc:
            log.exception(
                "%s failed after its acknowledgement (journal entry %s)",
                what,
                key,
                extra={"work": what, "journal_key": key},
            )
            if self._metrics is not None:
                self._metrics.after_ack_failures.inc()
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._lock:
                self._running.pop(me, None)
            if self._journal is not None and key is not None:
                if failed:
                    self._journal.failed(key)  # its person is told
                else:
                    self._journal.cross_out(key)
