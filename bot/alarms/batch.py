"""Group commit for the alarm intake: notifications that arrive together, one transaction.

Each verified notification is handed to `GroupCommit.submit`, which answers a
future. One writer thread takes what is waiting (up to `MOST`), records it
all in one transaction (`AlarmIntake.record_batch`) and only then resolves each
one's future with its outcome, or every future of a batch that failed with
the failure: nobody is answered before their notification is durable.

A notification that finds the writer idle goes alone and at once, recorded and
applied in one transaction, and so does the first of a batch when nothing is
pending (the first page of a storm waits for no batch: its first notifications
arrive together, having waited for the signing certificate).
While a batch commits the next ones queue, and the writer takes them all as the
next batch: it never waits for a batch to fill (waiting 2 ms for more cost a
storm's intake a tenth of its rate).

In a storm (a batch of more than one, or anything still pending) the writer
only records, answers, and leaves the applying for later (`Later`): recording
a notification costs a fraction of applying it, so a storm is answered at the
rate it is recorded. What is pending is applied a slice at a time once no
notification has arrived for `QUIET_S`, and at least every `APPLY_EVERY_S`
even while they keep coming, so a flood that never pauses delays its incidents
and pages but never stops them. One thread does both, so they apply in the
order they were recorded.

The writer outlives whatever goes wrong in one of its turns: the exception is
logged with the ids in hand, told to `on_error` (counted), every notification
of that turn still unanswered is answered with it (a 5xx: SNS delivers it
again), and the next turn begins. Without the writer nothing would ever be
recorded again.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Protocol

from bot.alarms.service import Inbound

log = logging.getLogger(__name__)

# The most notifications in one transaction: enough that a storm's 32 requests in
# flight go in one or two, few enough that one batch's statements keep each
# answer well within SNS's 15 s timeout.
MOST = 64
# What is pending is applied once no notification has arrived for this long ...
QUIET_S = 0.1
# ... and, while they keep coming, a slice at least this often.
APPLY_EVERY_S = 0.5
# Notifications applied in one transaction: a few tens of milliseconds once the
# storm pauses; a couple while it goes on, so that arrivals hardly wait behind them.
APPLY_SLICE = 8
FLOOD_SLICE = 2
# The database refused to apply: try again after this (arrivals are recorded meanwhile).
APPLY_RETRY_S = 1.0
# When idle, look this often for what another instance left pending.
SWEEP_EVERY_S = 30.0
# On stop, applying what is pending stops after this (the rest waits for the next start).
STOP_APPLY_S = 10.0

Outcome = str | BaseException
_Item = tuple[Inbound, "Future[str]"]
Record = Callable[[list[Inbound]], list[Outcome]]
# What the writer was doing when it failed (the `step` told to `on_error`).
RECORD = "record"
APPLY = "apply"
SWEEP = "sweep"
STOP = "stop"


class IntakeStopping(RuntimeError):
    """Refused by an intake that is stopping: never taken, never recorded (SNS retries it)."""


class Later(Protocol):
    """Recording now and applying after (bot/alarms/intake.py)."""

    def record_later(self, inbounds: list[Inbound]) -> list[Outcome]: ...
    def apply_later(self, most: int = ...) -> int: ...
    def backlog(self) -> int: ...
    def sweep(self) -> int: ...


class GroupCommit:
    def __init__(
        self,
        record_batch: Record,
        *,
        later: Later | None = None,
        most: int = MOST,
        name: str = "intake-writer",
        on_error: Callable[[str], None] = lambda _step: None,
    ) -> None:
        self._record_batch = record_batch
        self._later = later
        self._most = most
        self._name = name
        self._on_error = on_error  # told the step of each failure the writer outlived
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        # The writer's own: what it has in hand, and when it last applied, heard or retried.
        self._in_hand: list[_Item] = []
        self._step = RECORD
        self._stopping = False
        self._applied_at = self._arrived_at = self._retry_at = 0.0

    def start(self) -> None:
        """Start the writer now (else the first notification does)."""
        with self._lock:
            self._start()

    def submit(self, inbound: Inbound) -> Future[str]:
        """Queue `inbound` for the next batch; its future holds the outcome once committed.

        An intake that is stopping fails the future at once with IntakeStopping.
        """
        future: Future[str] = Future()
        with self._lock:
            if self._stopped:
                future.set_exception(IntakeStopping("the intake is stopping"))
                return future
            # Queued before a new writer starts: its first look sees it.
            self._queue.put((inbound, future))
            self._start()
        return future

    def _start(self) -> None:
        if self._thread is None and not self._stopped:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def waiting(self) -> int:
        """Notifications queued for a batch not begun yet."""
        return self._queue.qsize()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Record what was queued, then stop the writer."""
        with self._lock:
            self._stopped = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join(timeout_s)

    def _loop(self) -> None:
        self._applied_at = self._arrived_at = self._retry_at = time.monotonic()
        while True:
            try:
                if self._turn():
                    return
            except Exception as exc:
                self._survive(exc)
                if self._stopping:
                    return
            finally:
                self._in_hand = []

    def _turn(self) -> bool:
        """One turn: apply a slice, sweep, or record the next batch; True once stopped."""
        now = time.monotonic()
        later = self._later
        pending = later is not None and later.backlog() > 0
        wait: float | None = None if later is None else SWEEP_EVERY_S
        if later is not None and pending and now >= self._retry_at:
            quiet = self._queue.empty() and now - self._arrived_at >= QUIET_S
            if quiet or now - self._applied_at >= APPLY_EVERY_S:
                self._applied_at = now
                self._step = APPLY
                # While they keep coming, a small slice: the arrivals wait behind it.
                if later.apply_later(APPLY_SLICE if quiet else FLOOD_SLICE):
                    return False
                self._retry_at = now + APPLY_RETRY_S  # the database refused
                wait = APPLY_RETRY_S
            else:
                wait = max(
                    0.0,
                    min(self._arrived_at + QUIET_S, self._applied_at + APPLY_EVERY_S) - now,
                )
        elif pending:
            wait = self._retry_at - now
        try:
            first = self._queue.get(timeout=wait)
        except queue.Empty:
            if later is not None and not pending:
                self._step = SWEEP
                later.sweep()
            return False
        self._arrived_at = time.monotonic()
        if first is None:
            self._stopping = True
            self._apply_before_stopping()
            return True
        self._step = RECORD
        self._in_hand = [first]
        batch, stopping = self._gather(first)
        self._in_hand = batch
        self._stopping = stopping
        self._commit(batch)
        if stopping:
            self._apply_before_stopping()
            return True
        return False

    def _survive(self, exc: Exception) -> None:
        """Log and count a failure of the writer's turn, and answer what it had in hand."""
        step = self._step
        unanswered = [(inbound, future) for inbound, future in self._in_hand if not future.done()]
        log.error(
            "the intake's writer failed (%s, %s) with %d notifications in hand; it goes on",
            step,
            type(exc).__name__,
            len(unanswered),
            exc_info=exc,
            extra={
                "step": step,
                "error": type(exc).__name__,
                "message_ids": [inbound.message_id for inbound, _ in unanswered],
            },
        )
        self._on_error(step)
        for inbound, future in unanswered:
            _answer(inbound, future, exc)
        if step == APPLY:
            # What failed is tried again later, not in a loop as fast as it fails.
            self._retry_at = time.monotonic() + APPLY_RETRY_S

    def _apply_before_stopping(self) -> None:
        self._step = STOP
        until = time.monotonic() + STOP_APPLY_S
        while self._later is not None and time.monotonic() < until:
            if not self._later.apply_later():
                return

    def _gather(self, first: _Item) -> tuple[list[_Item], bool]:
        batch = [first]
        while len(batch) < self._most:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[_Item]) -> None:
        if self._later is not None and len(batch) > 1 and self._later.backlog() == 0:
            # The first of a storm is applied at once, alone: its page waits neither
            # for the applying of a slice (which would share the interpreter with the
            # checks of the notifications arriving meanwhile) nor for the others.
            self._write(self._record_batch, batch[:1])
            batch = batch[1:]
        record = self._record_batch
        if self._later is not None and (len(batch) > 1 or self._later.backlog() > 0):
            # Behind what is pending, a lone notification waits its turn too: in order.
            record = self._later.record_later
        self._write(record, batch)

    def _write(self, record: Record, batch: list[_Item]) -> None:
        """Record `batch` and answer each of it."""
        try:
            outcomes = record([inbound for inbound, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as exc:  # the whole batch failed: every one of them is told
            log.error(
                "a batch of %d notifications failed as a whole: %s",
                len(batch),
                type(exc).__name__,
                exc_info=exc,
                extra={
                    "message_ids": [inbound.message_id for inbound, _ in batch],
                    "batch": len(batch),
                    "error": type(exc).__name__,
                },
            )
            self._on_error(RECORD)
            outcomes = [exc] * len(batch)
        for (inbound, future), outcome in zip(batch, outcomes, strict=True):
            _answer(inbound, future, outcome)


def _answer(inbound: Inbound, future: Future[str], outcome: Outcome) -> None:
    """Resolve `future` with `outcome`, unless it is cancelled already (its request is
    gone: the notification, recorded or not, is answered to nobody)."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        log.info(
            "message %r via %s: its request was gone before its answer",
            inbound.message_id,
            inbound.via,
            extra={"message_id": inbound.message_id, "via": inbound.via},
        )
