"""Pacing per lane: each Slack and PagerDuty method by its own documented limit.

A lane is what one rate limit counts: a Slack channel's posts (`slack:<channel>`,
about one a second with short bursts), the workspace's `chat.update`s
(`slack.update`, Tier 3: 50+ a minute, bursts welcome), response_url answers
(`slack:response_url`), one routing key's Events API events (`pd:<variable>`,
about 120 a minute) and the REST API token (`pd:rest`, 960 a minute). A 429
pauses only the lane of the call that drew it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SLACK_UPDATES = "slack.update"  # chat.update of the bot's messages, across the workspace


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
    """Token buckets per lane, plus pauses imposed by 429 answers."""

    limits: Callable[[str], tuple[float, float]]  # lane -> (rate per second, burst)
    monotonic: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _paused_until: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _bucket(self, lane: str, now: float) -> TokenBucket:
        bucket = self._buckets.get(lane)
        if bucket is None:
            rate, burst = self.limits(lane)
            bucket = TokenBucket(rate_per_s=rate, burst=burst, tokens=burst, updated=now)
            self._buckets[lane] = bucket
        return bucket

    def wait_s(self, lane: str) -> float:
        """Seconds until `lane` may be used again (0 when it may be used now)."""
        with self._lock:
            now = self.monotonic()
            paused = max(0.0, self._paused_until.get(lane, 0.0) - now)
            return max(paused, self._bucket(lane, now).wait_s(now))

    def waiting(self) -> dict[str, float]:
        """Lanes that may not be used now, with the seconds until they may."""
        with self._lock:
            now = self.monotonic()
            waits = {t: until - now for t, until in self._paused_until.items() if until > now}
            for lane, bucket in self._buckets.items():
                wait = bucket.wait_s(now)
                if wait > 0:
                    waits[lane] = max(wait, waits.get(lane, 0.0))
            return waits

    def take(self, lane: str) -> bool:
        with self._lock:
            now = self.monotonic()
            if self._paused_until.get(lane, 0.0) > now:
                return False
            bucket = self._bucket(lane, now)
            bucket.refill(now)
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def pause(self, lane: str, seconds: float) -> None:
        with self._lock:
            until = self.monotonic() + seconds
            self._paused_until[lane] = max(until, self._paused_until.get(lane, 0.0))
