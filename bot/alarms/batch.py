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
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
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
    ) -> None:
        self._record_batch = record_batch
        self._later = later
        self._most = most
        self._name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Start the writer now (else the first notification does)."""
        with self._lock:
            self._start()

    def submit(self, inbound: Inbound) -> Future[str]:
        """Queue `inbound` for the next batch; its future holds the outcome once committed."""
        future: Future[str] = Future()
        with self._lock:
            if self._stopped:
                future.set_exception(RuntimeError("the intake is stopping"))
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
        applied_at = arrived_at = retry_at = time.monotonic()
        later = self._later
        while True:
            now = time.monotonic()
            pending = later is not None and later.backlog() > 0
            wait: float | None = None if later is None else SWEEP_EVERY_S
            if later is not None and pending and now >= retry_at:
                quiet = self._queue.empty() and now - arrived_at >= QUIET_S
                if quiet or now - applied_at >= APPLY_EVERY_S:
                    applied_at = now
                    # While they keep coming, a small slice: the arrivals wait behind it.
                    if later.apply_later(APPLY_SLICE if quiet else FLOOD_SLICE):
                        continue
                    retry_at = now + APPLY_RETRY_S  # the database refused
                    wait = APPLY_RETRY_S
                else:
                    wait = max(0.0, min(arrived_at + QUIET_S, applied_at + APPLY_EVERY_S) - now)
            elif pending:
                wait = retry_at - now
            try:
                first = self._queue.get(timeout=wait)
            except queue.Empty:
                if later is not None and not pending:
                    later.sweep()
                continue
            arrived_at = time.monotonic()
            if first is None:
                self._apply_before_stopping()
                return
            batch, stopping = self._gather(first)
            self._commit(batch)
            if stopping:
                self._apply_before_stopping()
                return

    def _apply_before_stopping(self) -> None:
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

    @staticmethod
    def _write(record: Record, batch: list[_Item]) -> None:
        """Record `batch` and answer each of it."""
        try:
            outcomes = record([inbound for inbound, _ in batch])
        except Exception as exc:  # the whole batch failed: every one of them is told
            outcomes = [exc] * len(batch)
        for (_inbound, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
