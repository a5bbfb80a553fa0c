"""The outbox worker: claims due deliveries, sends them, records what happened.

Order is kept per `order_key` (a message before its thread, a trigger before
its resolve): a delivery is only eligible when no earlier delivery with the
same key is still pending. Claims are leases in the database, so several
instances can share one outbox and a crashed instance's work is taken over
when its lease runs out. A claim bumps `attempts` before anything goes on the
wire, which is how the Slack sender knows to look for an earlier post before
posting again.

No more is claimed than there are free senders, counting those held for claims
made at once in transactions not yet committed (bot/outbox/express.py), so a
claim does not wait in the pool while its lease runs. Nor may one family of
deliveries (the service they call: Slack, response_urls, PagerDuty's Events and
REST APIs) take the senders another needs (`_may_take`).

The leases of sends queued or on the wire here are renewed in the database
once a quarter of each has run, on a thread (and, when given, sessions) of
their own, each renewal bounded by an eighth of a lease's lock and statement
timeout and tried again an eighth of a lease after it failed: a pass of the
worker held up (a row lock, a pool wait, a slow query) must not let a lease run
out while its send is on the wire, or another instance takes the delivery over
and sends it too. A send that waited for a sender renews its lease before it
goes, and a sender asks again (`lease_still_held`) before a call that must not be
made twice after a slow look: a send whose lease ended is not made.

What is due is claimed lowest `priority` first (a person's click before bulk
work), then oldest, and only from lanes the pacer lets through now. A lane is
the rate limit a send counts against: a channel's posts, the workspace's
`chat.update`s, response_url answers, one routing key's events, the REST token.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from prometheus_client import Counter, Histogram
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.orm import Session, aliased, sessionmaker

from bot.clock import Clock, SystemClock, seconds_between
from bot.config import DeliverySettings
from bot.db.statements import update_rows
from bot.outbox.express import Reservation
from bot.outbox.models import (
    DEAD,
    PAGERDUTY_EVENT,
    PENDING,
    SENT,
    SLACK_MESSAGE,
    SLACK_REPLY,
    Delivery,
    SlackMessage,
    family_of,
)
from bot.outbox.pacing import SLACK_UPDATES, Pacer
from bot.outbox.results import Dead, Job, MessageRef, Result, Retry, Sent, told_to_its_person

log = logging.getLogger(__name__)

Send = Callable[[Job], Result]
# While a worker's sender runs: asks whether its delivery is still this instance's to
# send, given the call the sender is about to make (`lease_still_held`).
_lease_check: contextvars.ContextVar[Callable[[str], bool] | None] = contextvars.ContextVar(
    "outbox_lease_check", default=None
)
BATCH = 200
# Passes over the outbox are at least this far apart. Every commit that adds a
# delivery wakes the worker, and under a flood (an alarm storm, a burst of
# clicks) a pass per commit spent more on looking than on sending; spaced out,
# a pass picks up everything that came meanwhile. Pages and answers do not
# wait for a pass (bot/outbox/express.py).
PASS_SPACING_S = 0.05
# PostgreSQL plans the query for due work from the table's statistics. Taken
# while every delivery was sent, they say nothing is pending, and a backlog
# that then appears at once (a storm, a flood of clicks) gets a plan that reads
# every pending row for each one: 3.2 s a pass with 2,500 pending, until
# autovacuum analyzes the table, which can take minutes. A pass slower than
# this has the statistics taken again, at most once per ANALYZE_EVERY_S.
SLOW_DUE_S = 0.25
ANALYZE_EVERY_S = 60.0
# A lease of a send in flight is renewed once a quarter of it has run, looked at every
# eighth of a lease, each renewal given an eighth of a lease to get its row locks and run:
# one that fails at its timeout leaves the next try over a third of the lease to run.
RENEWALS_PER_LEASE = 4
RENEWAL_TICKS_PER_LEASE = 8


@dataclass
class _Lease:
    """This instance's claim on a delivery whose send is queued or on the wire."""

    delivery: int
    attempts: int  # the claim's own: each claim of a delivery counts one more
    until: datetime
    family: str  # of its kind: what its sender counts against (`OutboxWorker._may_take`)
    lost: bool = False  # found taken or ended when it was to be renewed
    # Its outcome is being written, which releases the claim: a renewal not finding
    # it then is no loss.
    recording: bool = False


@dataclass(frozen=True, eq=False)
class _Hold:
    """A sender held for a claim whose transaction has not ended; each is its own (`is`),
    two taken under one order key one after the other never standing for each other."""

    until: datetime  # the end of the claim's lease
    # time.monotonic() past which the hold is let go even if its transaction was never
    # seen to end: the lease it was for has ended by then.
    expires_at: float
    family: str  # of the delivery's kind


class DeliveryMetrics(Protocol):
    """What the worker counts: `bot.observability.metrics.Metrics` in the service."""

    def delivery(self, kind: str, outcome: str, *, pages: bool = True) -> None: ...

    def page_accepted(self, seconds: float) -> None: ...

    def folded(self, items: int) -> None: ...

    def at_once(self, outcome: str) -> None:
        """An offer to send a delivery right after its commit: `leased` (handed to a sender
        after the commit), `unused` (reserved, not sent at once), or why it was not taken."""

    @property
    def outbox_lease_lost(self) -> Counter:
        """Claims of this instance whose lease ended before their send or its record."""

    def outbox_analyzed(self) -> None:
        """The statistics of the deliveries table were taken again after a slow pass."""

    @property
    def click_to_effect(self) -> Histogram: ...


class DeliveryObserver(Protocol):
    def recorded(self, db_session: Session, job: Job, result: Result, now: datetime) -> None:
        """Called in the transaction that records `result`, before its commit.

        What it writes goes in a SAVEPOINT of its own (`begin_nested`), so that
        its failure cannot undo the record.
        """


def outcome_of(result: Result) -> str:
    """The `outcome` label of opsbot_deliveries_total."""
    if isinstance(result, Sent):
        return "ok"
    if isinstance(result, Dead):
        return "dead"
    if result.waiting:
        return "waiting"
    return "rate_limited" if result.pause_target_s else "retry"


def lane_of() -> ColumnElement[str]:
    """A delivery's pacing lane, in SQL: a message already in Slack is updated
    (`chat.update`, paced across the workspace); anything else counts against
    its target (a channel's posts, a routing key, the REST token, answers)."""
    posted = exists().where(SlackMessage.key == Delivery.message_key, SlackMessage.ts.is_not(None))
    return case(
        (and_(Delivery.kind == SLACK_MESSAGE, posted), literal(SLACK_UPDATES)),
        else_=Delivery.target,
    )


def waits_for_parent() -> ColumnElement[bool]:
    """A message to be posted in another's thread, while that one is still on its way.

    Once the parent is posted (or nothing more of it is pending: it never will be)
    the message goes, in the thread or at the top level.
    """
    child, parent = aliased(SlackMessage), aliased(SlackMessage)
    parent_owed = aliased(Delivery)
    return exists().where(
        Delivery.kind == SLACK_MESSAGE,
        child.key == Delivery.message_key,
        child.ts.is_(None),
        child.parent_key.is_not(None),
        parent.key == child.parent_key,
        parent.ts.is_(None),
        exists().where(
            parent_owed.message_key == child.parent_key,
            parent_owed.kind == SLACK_MESSAGE,
            parent_owed.status == PENDING,
        ),
    )


def reply_waits_for_message() -> ColumnElement[bool]:
    """A thread reply under a message with no place in Slack while a post of it is owed
    (deleted in Slack and to be posted again): claimed only once that post is made, so
    its wait costs it no attempt. When no post is owed it is claimed and given up."""
    message, owed = aliased(SlackMessage), aliased(Delivery)
    return exists().where(
        Delivery.kind == SLACK_REPLY,
        message.key == Delivery.message_key,
        message.ts.is_(None),
        exists().where(
            owed.message_key == Delivery.message_key,
            owed.kind == SLACK_MESSAGE,
            owed.status == PENDING,
        ),
    )


def is_alarm_page(job: Job) -> bool:
    """A PagerDuty trigger for an alarm (not a declared incident, not opsbot's own page)."""
    if job.kind != PAGERDUTY_EVENT or job.payload.get("action") != "trigger":
        return False
    details = (job.payload.get("payload") or {}).get("custom_details") or {}
    return bool(details.get("alarm_arn"))


class OutboxWorker:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        senders: dict[str, Send],
        pacer: Pacer,
        settings: DeliverySettings,
        clock: Clock | None = None,
        instance_id: str | None = None,
        metrics: DeliveryMetrics,
        observer: DeliveryObserver | None = None,
        slow_due_s: float = SLOW_DUE_S,
        leases: sessionmaker[Session] | None = None,
    ) -> None:
        """`leases`: sessions of a connection of their own for renewing leases (else `sessions`)."""
        self.sessions = sessions
        self._leases = leases or sessions
        self.senders = senders
        self._families = {family_of(kind) for kind in senders}
        self.pacer = pacer
        self.settings = settings
        self.clock = clock or SystemClock()
        self.instance_id = instance_id or f"outbox-{uuid.uuid4().hex[:12]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        # By order key: this instance's sends, queued or on the wire.
        self._in_flight: dict[str, _Lease] = {}
        # By order key: senders held for claims whose transaction has not ended.
        self._held: dict[str, _Hold] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._leases_thread: threading.Thread | None = None
        self._leases_stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._due_queries: dict[bool, Select[Delivery, str]] = {}  # by paced_lanes
        self.metrics = metrics
        self.observer = observer
        self.slow_due_s = slow_due_s
        self._analyzed_at: float | None = None  # time.monotonic() of the last ANALYZE

    @property
    def kinds(self) -> Collection[str]:
        return self.senders.keys()

    def start(self) -> None:
        self._stop.clear()
        self._leases_stop.clear()
        self._pool = ThreadPoolExecutor(self.settings.workers, thread_name_prefix="outbox-send")
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._leases_thread = threading.Thread(
            target=self._run_leases, name="outbox-leases", daemon=True
        )
        self._thread.start()
        self._leases_thread.start()
        log.info("outbox worker %s started for %s", self.instance_id, ", ".join(sorted(self.kinds)))

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        # Last: the sends still on the wire keep their leases until they end.
        self._leases_stop.set()
        if self._leases_thread is not None:
            self._leases_thread.join(timeout_s)

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.dispatch_due()
            except Exception:
                log.exception("outbox dispatch failed; retrying")
                delay = self.settings.poll_interval_s
            self._wake.wait(min(delay, self.settings.poll_interval_s))
            self._wake.clear()
            self._stop.wait(PASS_SPACING_S)

    # -- choosing work -------------------------------------------------------

    def _pending(self, *, paced_lanes: bool) -> ColumnElement[bool]:
        """Pending deliveries of the kinds bound as `kinds` (this worker's that may take
        a sender now) in lanes not being paced (those bound as `waiting` when there are any)."""
        criteria = [
            Delivery.status == PENDING,
            Delivery.kind.in_(bindparam("kinds", expanding=True)),
        ]
        if paced_lanes:
            criteria.append(lane_of().not_in(bindparam("waiting", expanding=True)))
        return and_(*criteria)

    @staticmethod
    def _values(kinds: list[str], waiting: Collection[str], **values: Any) -> dict[str, Any]:
        values = {**values, "kinds": kinds}
        return {**values, "waiting": list(waiting)} if waiting else values

    def _due(
        self,
        db_session: Session,
        now: datetime,
        *,
        kinds: list[str],
        waiting: Collection[str],
        limit: int,
    ) -> list[tuple[Delivery, str]]:
        query = self._due_query(paced_lanes=bool(waiting))
        values = self._values(kinds, waiting, now=now, limit=limit)
        return [(row, str(lane)) for row, lane in db_session.execute(query, values)]

    def _due_query(self, *, paced_lanes: bool) -> Select[Delivery, str]:
        """What is due, oldest first within the most urgent priority: built once for each
        shape and run with `now`, `limit`, the `kinds` and the `waiting` lanes bound
        (building it took more CPU than running it, at every pass)."""
        query = self._due_queries.get(paced_lanes)
        if query is not None:
            return query
        now: BindParameter[datetime] = bindparam("now")
        query = (
            select(Delivery, lane_of())
            .where(
                self._pending(paced_lanes=paced_lanes),
                Delivery.not_before <= now,
                or_(Delivery.claimed_by.is_(None), Delivery.claimed_until < now),
                *self._in_turn(now),
            )
            .order_by(Delivery.priority, Delivery.id)
            .limit(bindparam("limit"))
        )
        self._due_queries[paced_lanes] = query
        return query

    @staticmethod
    def _in_turn(now: BindParameter[datetime]) -> list[ColumnElement[bool]]:
        """A pending delivery whose turn has come: none earlier under its order key holds
        it back, nor a parent message still on its way."""
        earlier = aliased(Delivery)
        blocked = exists().where(
            earlier.order_key == Delivery.order_key,
            earlier.status == PENDING,
            earlier.id < Delivery.id,
            # A message's update does not wait for the replies in its thread, and
            # nothing waits for a folded reply held until its window ends (never
            # tried yet); a reply waiting to try again still goes first.
            ~and_(
                earlier.kind == SLACK_REPLY,
                or_(
                    Delivery.kind == SLACK_MESSAGE,
                    and_(earlier.not_before > now, earlier.attempts == 0),
                ),
            ),
        )
        return [~blocked, ~waits_for_parent(), ~reply_waits_for_message()]

    def _next_due_s(
        self, db_session: Session, now: datetime, kinds: list[str], waiting: Collection[str]
    ) -> float:
        """Seconds until a delivery none was due for may be claimed: the soonest its
        backoff or another's lease on it ends, among those whose turn has come.

        What waits for another (under its order key, or for its parent message) comes
        due when that one is sent, which its own time counts for; and one already due
        by its time that the pass did not find (on the wire here, held, just added) is
        claimed when its send ends or its commit wakes the loop. Either way the next
        pass waits the poll interval: looked for at once, every pass of a backlog held
        back by a delivery in backoff ran two queries for nothing, twenty times a second.
        """
        claimable_at = case(
            (
                and_(
                    Delivery.claimed_by.is_not(None),
                    Delivery.claimed_until > Delivery.not_before,
                ),
                Delivery.claimed_until,
            ),
            else_=Delivery.not_before,
        )
        query = select(func.min(claimable_at)).where(
            self._pending(paced_lanes=bool(waiting)), *self._in_turn(bindparam("now"))
        )
        soonest: datetime | None = db_session.scalar(query, self._values(kinds, waiting, now=now))
        if soonest is None or soonest <= now:
            return self.settings.poll_interval_s
        return (soonest - now).total_seconds()

    def dispatch_due(self) -> float:
        """Claim and start what is due; return seconds until something may be due.

        Only as much as the senders can start now is looked at, and nothing in
        a lane being paced: under a flood (a backlog of answers, a paused
        channel) a pass stays as cheap as when all is quiet.
        """
        now = self.clock.now()
        with self._lock:
            free = self._free()
            kinds = self._kinds_with_room()
        if free <= 0 or not kinds:
            return self.settings.poll_interval_s  # a send that ends wakes the loop
        waiting = self.pacer.waiting()
        delay = min([self.settings.poll_interval_s, *waiting.values()])
        delay = max(delay, 0.01)
        with self.sessions() as db_session:
            started = time.monotonic()
            candidates = self._due(
                db_session, now, kinds=kinds, waiting=waiting, limit=min(BATCH, 2 * free)
            )
            self._after_due(db_session, took_s=time.monotonic() - started)
            if not candidates:
                return min(delay, self._next_due_s(db_session, now, kinds, waiting))
            chosen: list[tuple[Delivery, str]] = []
            holds: dict[str, _Hold] = {}  # by order key, for the rows chosen
            handed_over: set[str] = set()
            try:
                for row, lane in candidates:
                    hold = self._hold(now, family_of(row.kind))
                    with self._lock:
                        if self._free() <= 0:
                            # No more than the free senders start now: a claimed row waiting
                            # in the pool would spend its lease. Each is held from here, so
                            # a transaction claiming at once meanwhile does not count it free.
                            break
                        if self._busy_with(row.order_key):  # one at a time under an order key
                            continue
                        if not self._may_take(hold.family):
                            # Its family used up its share in this pass: the next pass,
                            # soon, looks past its rows for the other families'.
                            delay = 0.01
                            continue
                        self._held[row.order_key] = hold
                    wait = self.pacer.wait_s(lane)
                    if wait > 0 or not self.pacer.take(lane):
                        self._give_back([(row.order_key, hold)])
                        delay = min(delay, max(wait, 0.01))
                        continue
                    chosen.append((row, lane))
                    holds[row.order_key] = hold
                claimed = self._claim(db_session, chosen, now)
                handed_over = {order_key for _, order_key in claimed}
                for job, order_key in claimed:
                    self._start(job, order_key, holds[order_key])
            finally:
                # What the claim did not get (changed since it was read) frees its sender.
                self._give_back(
                    [(key, hold) for key, hold in holds.items() if key not in handed_over]
                )
        return delay

    def _hold(self, now: datetime, family: str) -> _Hold:
        lease_s = self.settings.lease_s
        return _Hold(now + timedelta(seconds=lease_s), time.monotonic() + lease_s, family)

    def _free(self) -> int:
        """Senders neither sending nor held for a claim; call it holding `_lock`."""
        moment = time.monotonic()
        for order_key, hold in list(self._held.items()):
            if hold.expires_at < moment:
                # A transaction that outlived its lease, or one that ended unseen: what it
                # claimed, if anything, is any instance's to send now.
                del self._held[order_key]
                self._lease_lost("reservation_expired")
                log.warning(
                    "outbox: the sender held for a claim under %s is free again: the "
                    "claim's transaction outlived its lease",
                    order_key,
                    extra={"order_key": order_key},
                )
        return self.settings.workers - len(self._in_flight) - len(self._held)

    def _may_take(self, family: str) -> bool:
        """Whether a delivery of `family` may take a sender now; call it holding `_lock`.

        Each family of this worker's kinds that uses no sender has one kept free for
        it: a family takes its first sender whenever one is free, and any more only
        while as many stay free as there are other families using none. A service
        that hangs (each send held until its timeout) or fails slowly thus holds at
        most the senders the others leave, however many of its deliveries are due,
        and never the last one another needs: Slack still posts, the one way on-call
        hears of alarms during a PagerDuty outage, and pages go while Slack hangs.
        With 8 senders and 4 families, one family alone uses up to 5; families busy
        together share all 8. The rule holds for at-once claims (`reserve`) as for the
        worker's passes, and costs nothing when this worker sends one family only.
        """
        free = self._free()
        if free <= 0:
            return False
        using = {lease.family for lease in self._in_flight.values()}
        using.update(hold.family for hold in self._held.values())
        if family not in using:
            return True
        idle = self._families - using - {family}
        return free - 1 >= len(idle)

    def _kinds_with_room(self) -> list[str]:
        """This worker's kinds whose family may take a sender now; call it holding `_lock`."""
        return sorted(kind for kind in self.kinds if self._may_take(family_of(kind)))

    def _busy_with(self, order_key: str) -> bool:
        """Whether this instance sends or holds a sender under `order_key`; under `_lock`."""
        return order_key in self._in_flight or order_key in self._held

    def _after_due(self, db_session: Session, *, took_s: float) -> None:
        """A slow query for due work on PostgreSQL: take the table's statistics again."""
        if took_s <= self.slow_due_s or db_session.get_bind().dialect.name != "postgresql":
            return
        last = self._analyzed_at
        if last is not None and time.monotonic() - last < ANALYZE_EVERY_S:
            return
        self._analyzed_at = time.monotonic()
        log.warning(
            "outbox: the query for due work took %.2f s; taking the statistics of "
            "deliveries again (ANALYZE)",
            took_s,
        )
        with self.sessions() as analyzing:
            analyzing.execute(text("ANALYZE deliveries"))
            analyzing.commit()
        self.metrics.outbox_analyzed()

    def _claim(
        self, db_session: Session, chosen: list[tuple[Delivery, str]], now: datetime
    ) -> list[tuple[Job, str]]:
        """Claim the chosen rows in one statement; (job, order key) for each claimed.

        A row is claimed only at the version read, so one that changed since (its
        payload folded into, another instance's claim) waits for the next pass,
        and each claim makes its attempt the one read plus one (no read back).
        """
        if not chosen:
            return []
        claimed = set(
            db_session.scalars(
                update(Delivery)
                .where(
                    tuple_(Delivery.id, Delivery.version).in_(
                        [(row.id, row.version) for row, _ in chosen]
                    ),
                    Delivery.status == PENDING,
                )
                .values(
                    claimed_by=self.instance_id,
                    claimed_until=now + timedelta(seconds=self.settings.lease_s),
                    attempts=Delivery.attempts + 1,
                    version=Delivery.version + 1,
                    updated_at=now,
                )
                .returning(Delivery.id)
                .execution_options(synchronize_session=False)
            )
        )
        db_session.commit()
        rows = [(row, lane) for row, lane in chosen if row.id in claimed]
        for row, _ in rows:
            if row.claimed_by is not None:  # read with a lease that had run out
                log.info(
                    "delivery %s: taken over from %s, whose lease ended at %s",
                    row.id,
                    row.claimed_by,
                    row.claimed_until,
                    extra={"delivery": row.id, "kind": row.kind, "previous_claim": row.claimed_by},
                )
        messages = self._messages(
            db_session,
            {row.message_key for row, _ in rows},
            replied={row.message_key for row, _ in rows if row.kind == SLACK_REPLY},
        )
        db_session.commit()
        return [
            (
                Job(
                    row.id,
                    row.kind,
                    row.target,
                    dict(row.payload),
                    row.attempts + 1,
                    messages.get(row.message_key) if row.message_key else None,
                    created_at=row.created_at,
                    lane=lane,
                ),
                row.order_key,
            )
            for row, lane in rows
        ]

    @staticmethod
    def _messages(
        db_session: Session, keys: set[str | None], *, replied: set[str | None]
    ) -> dict[str, MessageRef]:
        """The Slack messages (and the ts of their thread's parent) the claimed rows change;
        for those `replied` under without a place in Slack, whether a post of them is owed
        (a reply waits for it, or is given up when none is)."""
        wanted = sorted(key for key in keys if key is not None)
        if not wanted:
            return {}
        found = db_session.scalars(select(SlackMessage).where(SlackMessage.key.in_(wanted))).all()
        unposted = sorted(m.key for m in found if m.ts is None and m.key in replied)
        owed: set[str] = set()
        if unposted:
            owed = set(
                db_session.scalars(
                    select(Delivery.message_key).where(
                        Delivery.message_key.in_(unposted),
                        Delivery.kind == SLACK_MESSAGE,
                        Delivery.status == PENDING,
                    )
                )
            )
        parents = sorted({m.parent_key for m in found if m.parent_key is not None})
        parent_ts: dict[str, str | None] = {}
        if parents:
            parent_ts = {
                key: ts
                for key, ts in db_session.execute(
                    select(SlackMessage.key, SlackMessage.ts).where(SlackMessage.key.in_(parents))
                )
            }
        return {
            m.key: MessageRef(
                m.key,
                m.channel,
                m.channel_id,
                m.ts,
                thread_ts=parent_ts.get(m.parent_key) if m.parent_key is not None else None,
                owed=(m.key in owed) if m.key in unposted else None,
            )
            for m in found
        }

    # -- claimed in the transaction that adds them (bot/outbox/express.py) -----

    def reserve(self, *, kind: str, target: str, order_key: str, now: datetime) -> _Hold | None:
        """A sender held for a claim at once of a delivery of `kind` under `order_key`
        (the hold itself, whose `until` the claim writes), or None: the delivery is
        left to the worker."""
        if self._pool is None or self._stop.is_set():
            return None
        hold = self._hold(now, family_of(kind))
        with self._lock:
            behind = self._busy_with(order_key)
            # Only when a sender is free, and one its family may take: a delivery
            # claimed now but sent after others queued before it would spend its
            # share of the pace early, and calls bunched up that way draw 429s. The
            # sender is held until the claim's transaction ends, or transactions
            # side by side would all count it free.
            busy = not behind and not self._may_take(hold.family)
            if not (behind or busy):
                self._held[order_key] = hold
        outcome = "behind" if behind else "busy" if busy else None
        if outcome is None and not self.pacer.take(target):
            self._give_back([(order_key, hold)])
            outcome = "paced"
        if outcome is not None:
            self.metrics.at_once(outcome)
            return None
        return hold  # counted once its transaction ends: `leased` or `unused`

    def send_claimed(self, jobs: list[tuple[Job, str, Reservation | None]]) -> None:
        for job, order_key, reservation in jobs:
            started = self._start(job, order_key, reservation)
            self.metrics.at_once("leased" if started else "unused")

    def release(self, reservations: Collection[tuple[str, Reservation]]) -> None:
        """Give back the senders held for `reservations` (order key, reservation): their
        transaction claimed nothing with them, or did not commit."""
        for _ in reservations:
            self.metrics.at_once("unused")
        with self._lock:
            was_full = len(self._kinds_with_room()) < len(self.kinds)
        if self._give_back(reservations) and was_full:
            self._wake.set()  # the loop may have let due work wait for a sender

    def _give_back(self, reservations: Collection[tuple[str, Reservation]]) -> bool:
        """Free the senders held for `reservations`, each only while its own: one that
        outlived its lease may have been followed by another's under its order key."""
        with self._lock:
            mine = [key for key, reservation in reservations if self._held.get(key) is reservation]
            for key in mine:
                del self._held[key]
        return bool(mine)

    def _start(self, job: Job, order_key: str, reservation: Reservation | None) -> bool:
        """Hand `job`, claimed with `reservation`, to a sender; False when it is left to
        whoever claims it once its lease ends.

        The lease is the claim's own: its reservation's end, or none known (the send
        renews it in the database first, if it still can be). A send under the order
        key already on its way here means the reservation outlived its lease and
        another took its place: the newcomer does not go beside it.
        """
        until = self.clock.now() if reservation is None else reservation.until
        lease = _Lease(job.id, job.attempts, until, family_of(job.kind))
        with self._lock:
            if reservation is not None and self._held.get(order_key) is reservation:
                del self._held[order_key]
            ahead = self._in_flight.setdefault(order_key, lease)
        ids = {"delivery": job.id, "kind": job.kind, "order_key": order_key}
        if ahead is not lease:
            log.warning(
                "delivery %s (%s to %s) not sent now: delivery %s of its order is on its way "
                "here; it goes when its lease ends",
                job.id,
                job.kind,
                job.target,
                ahead.delivery,
                extra={**ids, "in_flight": ahead.delivery},
            )
            return False
        try:
            if self._pool is None:
                raise RuntimeError("the outbox worker is not running")
            self._pool.submit(self._send, job, order_key, lease)
        except RuntimeError:  # stopped since the claim
            self._done_with(order_key, lease)
            log.warning("delivery %s goes out when its lease ends, not now", job.id, extra=ids)
            return False
        return True

    # -- leases of sends in flight ------------------------------------------------

    @property
    def _renew_every_s(self) -> float:
        return self.settings.lease_s / RENEWALS_PER_LEASE

    @property
    def _renewal_tick_s(self) -> float:
        return self.settings.lease_s / RENEWAL_TICKS_PER_LEASE

    def _run_leases(self) -> None:
        # Its own thread: a pass held up by a row lock, the pool or a slow query holds up
        # no renewal, and the sends it covers are not taken over meanwhile.
        while not self._leases_stop.wait(self._renewal_tick_s):
            try:
                self._renew_in_flight()
            except Exception:
                log.exception("outbox: renewing the leases of sends in flight failed; going on")

    def _renew_in_flight(self) -> None:
        """Renew the leases of sends queued or on the wire here once a quarter of each has
        run, so that a send slower than a lease (a Slack post after a look for an earlier
        one) is not taken over meanwhile; count each found lost."""
        now = self.clock.now()
        left = timedelta(seconds=self.settings.lease_s - self._renew_every_s)
        with self._lock:
            due = [
                lease
                for lease in self._in_flight.values()
                if not lease.recording and self._renew_by(lease, now, left)
            ]
        if not due:
            return
        try:
            _, lost = self._renew(due, self._leases)
        except Exception as exc:
            # Tried again at the next tick, with over a third of the lease still to run.
            ids = sorted(lease.delivery for lease in due)
            log.warning(
                "outbox: the leases of deliveries %s could not be renewed (%s); trying again "
                "in %.1f s",
                ids,
                type(exc).__name__,
                self._renewal_tick_s,
                extra={"deliveries": ids, "error": type(exc).__name__},
            )
            return
        for lease in lost:
            log.warning(
                "delivery %s: its lease ended or was taken over while its send was queued or "
                "on the wire here; the call that sends it is not made if not made yet",
                lease.delivery,
                extra={"delivery": lease.delivery, "attempts": lease.attempts},
            )
            self._lease_lost("in_flight")

    @staticmethod
    def _renew_by(lease: _Lease, now: datetime, left: timedelta) -> bool:
        return not lease.lost and lease.until - now <= left

    def _renew(
        self, leases: list[_Lease], sessions: sessionmaker[Session]
    ) -> tuple[set[int], list[_Lease]]:
        """Extend the leases still as claimed (this instance's, from the same claim, not
        ended) in one statement: the deliveries whose lease was extended, and the leases
        this renewal found lost (not known lost before, nor being recorded).

        A new version makes a claim by another instance that read the row before
        this fail, as a claim of its own would. On PostgreSQL the renewal waits at most
        an eighth of a lease for a row lock (a handler's transaction lifting work queued
        behind it, say) or for its statement: the next one tries again in time.
        """
        with sessions() as db_session:
            connection = db_session.connection()
            if connection.dialect.name == "postgresql":
                bound = f"{max(1, round(self._renewal_tick_s * 1000))}ms"
                db_session.execute(
                    text(
                        "SELECT set_config('lock_timeout', :bound, true), "
                        "set_config('statement_timeout', :bound, true)"
                    ),
                    {"bound": bound},
                )
            now = self.clock.now()  # once a connection is had, however long that took
            until = now + timedelta(seconds=self.settings.lease_s)
            renewed = set(
                db_session.scalars(
                    update(Delivery)
                    .where(
                        tuple_(Delivery.id, Delivery.attempts).in_(
                            [(lease.delivery, lease.attempts) for lease in leases]
                        ),
                        Delivery.claimed_by == self.instance_id,
                        Delivery.claimed_until > now,
                        Delivery.status == PENDING,
                    )
                    .values(claimed_until=until, version=Delivery.version + 1)
                    .returning(Delivery.id)
                    .execution_options(synchronize_session=False)
                )
            )
            db_session.commit()
        lost: list[_Lease] = []
        with self._lock:
            for lease in leases:
                if lease.delivery in renewed:
                    lease.until = max(lease.until, until)
                elif not lease.lost:
                    lease.lost = True
                    if not lease.recording:
                        lost.append(lease)
        return renewed, lost

    def _still_held(self, job: Job, lease: _Lease, *, before: str = "") -> bool:
        """Whether this instance may send `job` now: its `lease` has more than half its
        length to run, as a send started moments after its claim has, or it is renewed
        in the database, which only a lease still this instance's and not ended can be.

        The one extra statement is paid only by a send that waited (a stalled process,
        a pool slower than its count, a transaction slow to commit, a slow look before
        a post), not by every click's. `before`: the call a sender is about to make,
        when it asks (`lease_still_held`); empty before the send starts.
        """
        now = self.clock.now()
        half = timedelta(seconds=self.settings.lease_s / 2)
        with self._lock:
            lost = lease.lost
            running = not lost and not self._renew_by(lease, now, half)
        if running:
            return True
        ids = {"delivery": job.id, "kind": job.kind, "attempts": job.attempts}
        renewed: set[int] = set()
        newly_lost: list[_Lease] = []
        if not lost:  # known lost (and counted) by a renewal already: nothing to ask
            try:
                # On the outbox's own pool: the leases connection is the renewals'.
                renewed, newly_lost = self._renew([lease], self.sessions)
            except Exception:
                log.exception(
                    "delivery %s: its lease could not be renewed before %s; not sent now",
                    job.id,
                    before or "sending",
                    extra=ids,
                )
                return False
        if renewed:
            return True
        if before:
            log.warning(
                "delivery %s (%s to %s) not sent on: its lease ended before %s; whoever "
                "holds the delivery now sends it",
                job.id,
                job.kind,
                job.target,
                before,
                extra=ids,
            )
        else:
            log.warning(
                "delivery %s (%s to %s) not sent: its lease ended before a sender took it "
                "up; whoever holds the delivery now sends it",
                job.id,
                job.kind,
                job.target,
                extra=ids,
            )
        if newly_lost:
            self._lease_lost("before_send")
        return False

    # -- sending and recording ------------------------------------------------

    def _send(self, job: Job, order_key: str, lease: _Lease) -> None:
        # What a sender asks before a call that must not be made twice (`lease_still_held`).
        asked = _lease_check.set(
            lambda call: self._still_held(job, lease, before=call or "its last call")
        )
        try:
            if self._still_held(job, lease):
                self._send_and_record(job, lease)
        finally:
            _lease_check.reset(asked)
            self._done_with(order_key, lease)
            self._wake.set()

    def _done_with(self, order_key: str, lease: _Lease) -> None:
        with self._lock:
            if self._in_flight.get(order_key) is lease:
                del self._in_flight[order_key]

    def _lease_lost(self, stage: str) -> None:
        """opsbot_outbox_lease_lost_total: `before_send`, `in_flight` (found ended or taken
        over by a renewal while its send was queued or on the wire), `after_send`,
        `reservation_expired` or `not_recorded`."""
        self.metrics.outbox_lease_lost.labels(stage).inc()

    def _send_and_record(self, job: Job, lease: _Lease) -> None:
        try:
            try:
                result = self.senders[job.kind](job)
            except Exception as exc:  # a bug in a sender must not kill the worker
                log.exception("delivery %s: sender failed", job.id)
                result = Retry(error=f"internal error: {type(exc).__name__}")
            with self._lock:
                lease.recording = True
            self._record(job, result)
        except Exception:
            log.exception(
                "delivery %s: could not record the outcome; the lease will expire",
                job.id,
                extra={"delivery": job.id, "kind": job.kind, "attempts": job.attempts},
            )
            self._lease_lost("not_recorded")

    def _backoff_s(self, attempts: int) -> float:
        base = min(self.settings.max_backoff_s, 2.0 ** max(0, attempts - 1))
        return base * random.uniform(0.5, 1.0)

    def _record(self, job: Job, result: Result) -> None:
        now = self.clock.now()
        mine = (Delivery.id == job.id, Delivery.claimed_by == self.instance_id)
        release = {"claimed_by": None, "claimed_until": None, "updated_at": now}
        with self.sessions() as db_session:
            if isinstance(result, Sent):
                still_mine = result.recorded or update_rows(
                    db_session,
                    update(Delivery)
                    .where(*mine)
                    .values(status=SENT, sent_at=now, last_error=None, **release),
                )
                if not still_mine:
                    # Sent after the lease ran out and another instance claimed it: the
                    # row and its message are theirs to record, not overwritten here.
                    log.warning(
                        "delivery %s (%s to %s) was sent after its lease ended; "
                        "another instance holds it",
                        job.id,
                        job.kind,
                        job.target,
                        extra={"delivery": job.id, "kind": job.kind, "attempts": job.attempts},
                    )
                    db_session.commit()
                    self._lease_lost("after_send")
                    return
                message = job.message
                if (
                    job.kind == SLACK_MESSAGE
                    and message is not None
                    and _newly_posted(message, result)
                ):
                    db_session.execute(
                        update(SlackMessage)
                        .where(SlackMessage.key == message.key)
                        .values(ts=result.ts, channel_id=result.channel_id, posted_at=now)
                        .execution_options(synchronize_session=False)
                    )
                log.info(
                    "delivery %s sent (%s to %s)",
                    job.id,
                    job.kind,
                    job.target,
                    extra={"delivery": job.id, "kind": job.kind, "attempts": job.attempts},
                )
            elif isinstance(result, Retry):
                after = (
                    result.after_s if result.after_s is not None else self._backoff_s(job.attempts)
                )
                after = min(after, self.settings.max_backoff_s)
                if result.ambiguous:
                    after = max(after, self.settings.lease_s)
                if result.pause_target_s:
                    self.pacer.pause(job.paced_by, result.pause_target_s)
                    log.warning(
                        "lane %s paused for %.1f s: delivery %s was refused (%s)",
                        job.paced_by,
                        result.pause_target_s,
                        job.id,
                        result.error[:200],
                        extra={"delivery": job.id, "kind": job.kind, "lane": job.paced_by},
                    )
                if result.forget_ts and job.message is not None:
                    after = 0.0
                still_mine = update_rows(
                    db_session,
                    update(Delivery)
                    .where(*mine)
                    .values(
                        not_before=now + timedelta(seconds=after),
                        last_error=result.error[:2000],
                        **release,
                    ),
                )
                if not still_mine:
                    # Its lease ran out and another instance claimed it: what that one
                    # found of the message (posted anew, say) is not forgotten here.
                    _failed_elsewhere(job, result.error)
                    db_session.commit()
                    return
                if result.forget_ts and job.message is not None:
                    db_session.execute(
                        update(SlackMessage)
                        .where(SlackMessage.key == job.message.key)
                        .values(ts=None, channel_id=None)
                        .execution_options(synchronize_session=False)
                    )
                extra = {"delivery": job.id, "kind": job.kind, "attempts": job.attempts}
                if result.waiting:
                    log.debug(
                        "delivery %s (%s to %s) waits, asked again in %.1f s: %s",
                        job.id,
                        job.kind,
                        job.target,
                        after,
                        result.error,
                        extra=extra,
                    )
                else:
                    log.warning(
                        "delivery %s (%s to %s) failed, attempt %d, retrying in %.1f s: %s",
                        job.id,
                        job.kind,
                        job.target,
                        job.attempts,
                        after,
                        result.error,
                        extra=extra,
                    )
            elif isinstance(result, Dead):
                still_mine = result.recorded or update_rows(
                    db_session,
                    update(Delivery)
                    .where(*mine)
                    .values(status=DEAD, last_error=result.error[:2000], **release),
                )
                if not still_mine:
                    # Its lease ran out and another instance claimed it: that one's
                    # attempt decides; nothing is told to operators nor counted here.
                    _failed_elsewhere(job, result.error)
                    db_session.commit()
                    return
                log.error(
                    "delivery %s (%s to %s) abandoned after %d attempts: %s",
                    job.id,
                    job.kind,
                    job.target,
                    job.attempts,
                    result.error,
                    extra={"delivery": job.id, "kind": job.kind, "attempts": job.attempts},
                )
            self._observe_in(db_session, job, result, now)
            db_session.commit()
        self._count(job, result, now)

    def _observe_in(self, db_session: Session, job: Job, result: Result, now: datetime) -> None:
        """Let the observer add to the record's transaction; its failure never loses the record."""
        if self.observer is None:
            return
        try:
            self.observer.recorded(db_session, job, result, now)
        except Exception:
            log.exception("delivery %s: noting it for operators failed", job.id)

    def _count(self, job: Job, result: Result, now: datetime) -> None:
        self.metrics.delivery(job.kind, outcome_of(result), pages=not told_to_its_person(job))
        if not isinstance(result, Sent):
            return
        items = job.payload.get("items") if job.kind == SLACK_REPLY else None
        if isinstance(items, list) and len(items) > 1:
            # A long fold keeps its first and last items and counts those in between.
            earlier = job.payload.get("earlier")
            self.metrics.folded(len(items) - 1 + (earlier if isinstance(earlier, int) else 0))
        if job.created_at is not None and is_alarm_page(job):
            self.metrics.page_accepted(seconds_between(job.created_at, now))
        clicked_at = job.payload.get("clicked_at") if job.kind == SLACK_MESSAGE else None
        if isinstance(clicked_at, str):
            try:
                clicked = datetime.fromisoformat(clicked_at)
            except ValueError:
                return
            self.metrics.click_to_effect.observe(seconds_between(clicked, now))


def lease_still_held(call: str = "") -> bool:
    """Whether the delivery this thread is sending is still this instance's to send.

    A sender asks right before a call that must not be made twice and may come long
    after the claim (a post after a look for an earlier one): on False its lease
    ended or another instance took the delivery over and sends it, so the call is not
    made. `call` names it in the log line. True outside a worker's send.
    """
    check = _lease_check.get()
    return True if check is None else check(call)


def pending_count(sessions: sessionmaker[Session], kinds: Collection[str] | None = None) -> int:
    with sessions() as db_session:
        query = select(func.count()).select_from(Delivery).where(Delivery.status == PENDING)
        if kinds is not None:
            query = query.where(Delivery.kind.in_(list(kinds)))
        return int(db_session.scalar(query) or 0)


def _failed_elsewhere(job: Job, error: str) -> None:
    log.warning(
        "delivery %s (%s to %s) failed after its lease ended (%s); another instance holds it",
        job.id,
        job.kind,
        job.target,
        error[:200],
        extra={"delivery": job.id, "kind": job.kind, "attempts": job.attempts},
    )


def _newly_posted(message: MessageRef, result: Sent) -> bool:
    """Whether a sent message's place is news to its row: a first post, or one found
    again after an ambiguous attempt. An update of a posted message leaves the row
    (its ts, its channel, when it was first posted) as it is: nothing to write."""
    if result.ts is None:
        return False
    return (message.ts, message.channel_id) != (result.ts, result.channel_id)
