"""Per-target pacing: Slack allows about one post a second per channel, PagerDuty's
Events API about 120 events a minute per routing key."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate_per_s)
        self.updated = now

    def wait_s(self, now: float) -> float:
        self.refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate_per_s


@dataclass
class Pacer:
    """Token buckets per target, plus pauses imposed by 429 answers."""

    limits: Callable[[str], tuple[float, float]]  # target -> (rate per second, burst)
    monotonic: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _paused_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _bucket(self, target: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(target)
        if bucket is None:
            rate, burst = self.limits(target)
            bucket = TokenBucket(rate_per_s=rate, burst=burst, tokens=burst, updated=now)
            self._buckets[target] = bucket
        return bucket

    def wait_s(self, target: str) -> float:
        """Seconds until `target` may be used again (0 when it may be used now)."""
        with self._lock:
            now = self.monotonic()
            paused = max(0.0, self._paused_until.get(target, 0.0) - now)
            return max(paused, self._bucket(target, now).wait_s(now))

    def waiting(self) -> dict[str, float]:
        """Targets that may not be used now, with the seconds until they may."""
        with self._lock:
            now = self.monotonic()
            waits = {t: until - now for t, until in self._paused_until.items() if until > now}
            for target, bucket in self._buckets.items():
                wait = bucket.wait_s(now)
                if wait > 0:
                    waits[target] = max(wait, waits.get(target, 0.0))
            return waits

    def take(self, target: str) -> bool:
        with self._lock:
            now = self.monotonic()
            if self._paused_until.get(target, 0.0) > now:
                return False
            bucket = self._bucket(target, now)
            bucket.refill(now)
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def pause(self, target: str, seconds: float) -> None:
        with self._lock:
            until = self.monotonic() + seconds
            self._paused_until[target] = max(until, self._paused_until.get(target, 0.0))
