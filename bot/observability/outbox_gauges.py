"""The outbox's depth and its oldest waiting delivery per family, read when scraped.

One grouped query over the pending deliveries, on a connection of its own (a
scrape during a storm never waits for, nor holds, a connection the intake
needs), and its answer is kept for `cache_s`: however often Prometheus, the
EMF lines, the late-page watch and `/opsbot status` ask, the database is asked
at most once per period.

A delivery's waiting time counts from when it first became due: a resolve held
back for the reopen window is not late while it waits on purpose, nor once a try
at its window's end has failed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, null, select, type_coerce
from sqlalchemy.orm import Session

from bot.clock import Clock, seconds_between
from bot.db.types import UTCDateTime
from bot.observability.metrics import TARGETS, family
from bot.outbox.models import PENDING, Delivery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FamilyBacklog:
    pending: int = 0
    oldest_due: datetime | None = None  # the longest-waiting due delivery became due then


@dataclass(frozen=True)
class OutboxBacklog:
    """Pending deliveries per family (`slack`, `pagerduty`, ...), as read at `read_at`."""

    families: dict[str, FamilyBacklog] = field(default_factory=dict)
    read_at: datetime | None = None

    def pending(self, target: str) -> int:
        return self.families.get(target, FamilyBacklog()).pending

    def oldest_s(self, target: str, now: datetime) -> float:
        oldest = self.families.get(target, FamilyBacklog()).oldest_due
        return 0.0 if oldest is None else seconds_between(oldest, now)


def read_backlog(db_session: Session, now: datetime) -> OutboxBacklog:
    """The one grouped query: pending count and oldest due time per delivery kind."""
    # A retry's backoff moves not_before, never first_due_at. Without it (a delivery
    # added by the release before): not_before until its first attempt, then created_at.
    first_due = func.coalesce(
        Delivery.first_due_at,
        case((Delivery.attempts == 0, Delivery.not_before), else_=Delivery.created_at),
    )
    due_since = case((first_due > now, null()), else_=first_due)
    query = (
        select(Delivery.kind, func.count(), type_coerce(func.min(due_since), UTCDateTime()))
        .where(Delivery.status == PENDING)
        .group_by(Delivery.kind)
    )
    totals: dict[str, tuple[int, datetime | None]] = {}
    for kind, count, oldest in db_session.execute(query):
        name = family(str(kind))
        pending, earliest = totals.get(name, (0, None))
        if oldest is not None and (earliest is None or oldest < earliest):
            earliest = oldest
        totals[name] = (pending + int(count), earliest)
    return OutboxBacklog(
        families={name: FamilyBacklog(p, o) for name, (p, o) in totals.items()}, read_at=now
    )


class OutboxGauges(Collector):
    """`opsbot_outbox_pending` and `opsbot_outbox_oldest_pending_seconds`, by `target`."""

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Clock,
        cache_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.cache_s = cache_s
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._backlog = OutboxBacklog()

    def backlog(self) -> OutboxBacklog:
        """The cached backlog, read again when older than `cache_s` (the last one on failure)."""
        with self._lock:
            fresh = self._read_at is not None and self.monotonic() - self._read_at < self.cache_s
            if not fresh:
                self._read_at = self.monotonic()
                try:
                    with Session(self.engine) as db_session:
                        self._backlog = read_backlog(db_session, self.clock.now())
                except Exception as exc:
                    log.warning(
                        "outbox backlog unreadable (%s); showing the last one read",
                        type(exc).__name__,
                    )
            return self._backlog

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Without it, registering would run collect() and so the query.
        yield GaugeMetricFamily("opsbot_outbox_pending", "", labels=["target"])
        yield GaugeMetricFamily("opsbot_outbox_oldest_pending_seconds", "", labels=["target"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = self.backlog()
        now = self.clock.now()
        pending = GaugeMetricFamily(
            "opsbot_outbox_pending",
            "Deliveries waiting in the outbox, by family (pagerduty, slack, ...).",
            labels=["target"],
        )
        oldest = GaugeMetricFamily(
            "opsbot_outbox_oldest_pending_seconds",
            "How long the longest-waiting due delivery of each family has waited (0: none).",
            labels=["target"],
        )
        for target in TARGETS:
            pending.add_metric([target], backlog.pending(target))
            oldest.add_metric([target], backlog.oldest_s(target, now))
        yield pending
        yield oldest

    def close(self) -> None:
        self.engine.dispose()
