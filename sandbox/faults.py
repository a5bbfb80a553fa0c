"""Scripted failures an emulator serves instead of answering: 429s, 500s, hangs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Fault:
    status: int = 500
    retry_after_s: float | None = None
    delay_s: float = 0.0  # a hang: wait this long before answering
    # Answered `status` at once, yet done this long after: its effect lands, late, though
    # the answer said it failed (Slack's fatal_error: "some aspect ... succeeded").
    done_after_s: float | None = None
    done: int = 0  # the calls it answered that are done since, late
    remaining: int | None = None  # how many requests it applies to (None: until `until`)
    until: float | None = None  # monotonic deadline
    match: Callable[[str], bool] | None = None  # which calls (by method or path)
    method: str | None = None  # and, when set, only requests of this HTTP method
    # Done at once, its answer held until this is set: a slow answer to work that landed.
    answer_when: threading.Event | None = None

    def applies(self, call: str, now: float, method: str | None = None) -> bool:
        if self.until is not None and now >= self.until:
            return False
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and method != self.method:
            return False
        return self.match is None or self.match(call)


class FaultPlan:
    """Faults in the order they were added; the first that applies is served."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    @staticmethod
    def _matcher(calls: tuple[str, ...]) -> Callable[[str], bool] | None:
        if not calls:
            return None
        return lambda call: any(call == c or call.startswith(c) for c in calls)

    def fail_next(
        self,
        count: int,
        *,
        status: int = 500,
        retry_after_s: float | None = None,
        calls: tuple[str, ...] = (),
        method: str | None = None,
    ) -> None:
        self._add(
            Fault(
                status=status,
                retry_after_s=retry_after_s,
                remaining=count,
                match=self._matcher(calls),
                method=method,
            )
        )

    def fail_for(
        self,
        seconds: float,
        *,
        status: int = 500,
        retry_after_s: float | None = None,
        calls: tuple[str, ...] = (),
        method: str | None = None,
    ) -> None:
        deadline = time.monotonic() + seconds
        self._add(
            Fault(
                status=status,
                retry_after_s=retry_after_s,
                until=deadline,
                match=self._matcher(calls),
                method=method,
            )
        )

    def hang_next(
        self,
        count: int,
        *,
        seconds: float,
        calls: tuple[str, ...] = (),
        method: str | None = None,
    ) -> None:
        """The next `count` calls wait `seconds`, then are answered (and done) as usual."""
        self._add(
            Fault(
                status=0,
                delay_s=seconds,
                remaining=count,
                match=self._matcher(calls),
                method=method,
            )
        )

    def answer_late_next(
        self,
        count: int,
        *,
        release: threading.Event,
        calls: tuple[str, ...] = (),
        method: str | None = None,
    ) -> None:
        """The next `count` calls are done at once, and answered only once `release` is
        set (or after 30 s): PagerDuty's change landed, its answer is slow to come."""
        self._add(
            Fault(
                status=0,
                answer_when=release,
                remaining=count,
                match=self._matcher(calls),
                method=method,
            )
        )

    def fail_but_do_next(
        self,
        count: int,
        *,
        status: int = 500,
        done_after_s: float,
        calls: tuple[str, ...] = (),
        method: str | None = None,
    ) -> Fault:
        """The next `count` calls are answered `status` at once, and done as usual
        `done_after_s` later: a failure answered after part of the work, which shows late.
        The fault returned counts those `done`."""
        fault = Fault(
            status=status,
            done_after_s=done_after_s,
            remaining=count,
            match=self._matcher(calls),
            method=method,
        )
        self._add(fault)
        return fault

    def down_for(self, seconds: float) -> None:
        """Every call fails with 503 for `seconds`: an outage."""
        self.fail_for(seconds, status=503)

    def mark_done(self, fault: Fault) -> None:
        """One call `fault` answered is done now, late."""
        with self._lock:
            fault.done += 1

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take(self, call: str, method: str | None = None) -> Fault | None:
        now = time.monotonic()
        with self._lock:
            self._faults = [f for f in self._faults if f.until is None or now < f.until]
            for fault in self._faults:
                if fault.applies(call, now, method):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None
