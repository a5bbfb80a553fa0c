"""Group commit for the alarm intake: notifications that arrive together, one transaction.

Each verified notification is handed to `GroupCommit.submit`, which answers a
future. One writer thread takes what is waiting (up to `MOST`), records it
all in one transaction (`AlarmIntake.record_batch`) and only then resolves each
one's future with its outcome, or every future of a batch that failed with
the failure: nobody is answered before their notification is durable.

A notification that finds the writer idle goes alone and at once (the first
page of a storm waits for no batch). While a batch commits the next ones
queue; after a batch of more than one (a storm is on), the writer lingers
`LINGER_S` for more before it starts the next, so batches fill instead of
going out in ones.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from bot.alarms.service import Inbound

log = logging.getLogger(__name__)

# The most notifications in one transaction: enough that a storm's 32 requests in
# flight go in one or two, few enough that one batch's statements keep each
# answer well within SNS's 15 s timeout.
MOST = 64
# How long a writer in a storm waits for a batch to fill; a lone notification never waits.
LINGER_S = 0.002

Outcome = str | BaseException
_Item = tuple[Inbound, "Future[str]"]


class GroupCommit:
    def __init__(
        self,
        record_batch: Callable[[list[Inbound]], list[Outcome]],
        *,
        most: int = MOST,
        linger_s: float = LINGER_S,
        name: str = "intake-writer",
    ) -> None:
        self._record_batch = record_batch
        self._most = most
        self._linger_s = linger_s
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
            self._start()
            self._queue.put((inbound, future))
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
        storm = False
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stopping = self._gather(first, linger_s=self._linger_s if storm else 0.0)
            self._commit(batch)
            storm = len(batch) > 1
            if stopping:
                return

    def _gather(self, first: _Item, *, linger_s: float) -> tuple[list[_Item], bool]:
        batch = [first]
        until = time.monotonic() + linger_s
        while len(batch) < self._most:
            left = until - time.monotonic()
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return batch, True
            batch.append(item)
        return batch, False

    def _commit(self, batch: list[_Item]) -> None:
        try:
            outcomes = self._record_batch([inbound for inbound, _ in batch])
        except Exception as exc:  # the whole batch failed: every one of them is told
            outcomes = [exc] * len(batch)
        for (_inbound, future), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
