"""Refusing a signed Slack request seen before.

Slack's signature covers a timestamp, and requests older than five minutes are
refused; within those five minutes a captured request could be sent again. Each
signature is remembered for the window, in memory: cheap enough for the
three-second path, and it covers only the instance that saw the request, while it
runs. A replay routed to another instance, or to this one after a restart, is
not caught (docs/security.md says what that allows); Events API deliveries are
deduplicated by their event id in the database, whichever instance gets them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

WINDOW_S = 300.0
MAX_ENTRIES = 200_000


class ReplayGuard:
    def __init__(
        self, *, window_s: float = WINDOW_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_s = window_s
        self.monotonic = monotonic
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def first_time(self, signature: str) -> bool:
        """True the first time a signature is presented within the window."""
        now = self.monotonic()
        with self._lock:
            while self._seen and (
                next(iter(self._seen.values())) < now - self.window_s
                or len(self._seen) > MAX_ENTRIES
            ):
                self._seen.popitem(last=False)
            if signature in self._seen:
                return False
            self._seen[signature] = now
            return True
