"""How late the event loop runs: every HTTP request waits on it, SNS notifications included.

A task on the loop asks to wake every `EVERY_S` and measures how late it woke:
the time something held the loop (a dispatch that waited, a long computation)
or the loop had more ready than it could run. Each lateness is observed in a
histogram; one over the warning threshold is logged, at most once a minute,
with how many there were and the worst since the last line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

EVERY_S = 0.1
# One warning line at most this often while the loop stays late.
WARN_EVERY_S = 60.0


class _Histogram(Protocol):
    def observe(self, amount: float) -> None: ...


class LoopWatch:
    def __init__(
        self,
        *,
        lag: _Histogram,
        warn_s: float,
        every_s: float = EVERY_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lag = lag
        self.warn_s = warn_s
        self.every_s = every_s
        self.monotonic = monotonic
        self._late = 0
        self._worst_s = 0.0
        self._warned_at: float | None = None

    async def run(self) -> None:
        """Watch until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.every_s
            await asyncio.sleep(self.every_s)
            self.observe(max(0.0, loop.time() - due))

    def observe(self, late_s: float) -> None:
        self.lag.observe(late_s)
        if late_s < self.warn_s:
            return
        self._late += 1
        self._worst_s = max(self._worst_s, late_s)
        now = self.monotonic()
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY_S:
            return
        log.warning(
            "the event loop ran %.3f s late (%d times over %.2f s since the last line): "
            "every HTTP request waited",
            self._worst_s,
            self._late,
            self.warn_s,
            extra={"late_s": round(self._worst_s, 3), "times": self._late},
        )
        self._warned_at = now
        self._late = 0
        self._worst_s = 0.0
