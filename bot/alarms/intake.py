"""Recording inbound messages, a batch to a transaction, safe against concurrent redelivery.

`record_batch` records the notifications that arrived together (bot/alarms/batch.py
gathers them) and applies them to their incidents in one transaction: all of
them are durable, or none is and each is told so (SNS and SQS deliver them
again). A failure that is not the database's or its connection's (one
notification the database or this code refuses) is not held against the rest:
the batch is then recorded one notification at a time, so only that one fails.

In a storm, applying (about 5 ms of the interpreter per notification) would
hold every answer back, so `record_later` only records a batch, each row
marked PENDING, and `apply_later` applies what is pending, oldest first, a
slice to a transaction, claiming each row so that it is applied once even when
two instances reach it. A restart, or another instance's sweep, applies what a
crash left pending.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from bot.alarms.batch import APPLY_SLICE, GroupCommit, Outcome
from bot.alarms.models import PENDING, ReceivedMessage
from bot.alarms.parse import TopicAccounts, counting_odd_fields
from bot.alarms.routing import route_for
from bot.alarms.service import (
    OWN_ACCOUNTS,
    Inbound,
    apply_recorded,
    receive,
    record_for_later,
)
from bot.clock import Clock
from bot.config import AlarmMatch, Config
from bot.db.statements import update_rows
from bot.incidents.models import Incident
from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)
_T = TypeVar("_T")
ATTEMPTS = 3
# What a notification recorded for later is answered.
RECORDED = "recorded; applied in turn"
# Pending rows older than this are another instance's that it did not live to apply.
ORPHANED_S = 60.0
# The warm-up's alarm comes by a topic of its own account, as any alarm must to be applied.
WARM_UP_ACCOUNT = "000000000000"
WARM_UP_TOPIC = f"arn:aws:sns:us-east-1:{WARM_UP_ACCOUNT}:opsbot-warm-up"

# (its id, when it was recorded) for each notification recorded for later.
_Pending = tuple[int, datetime]
# A batch's work in `_record`: each one's outcome, and its row when it is left pending.
_Work = Callable[[Session, list[Inbound], datetime], list[tuple[str, int | None]]]
# The database or the way to it, not what was asked of it: the server or the connection
# failed, or every pooled connection stayed busy past the pool's timeout. Nothing of the
# transaction was committed, and no part of it would be alone.
UNAVAILABLE = (OperationalError, InterfaceError, PoolTimeout)


def _negative_incident_ids(db_session: Session, _context: object, _instances: object) -> None:
    for instance in db_session.new:
        if isinstance(instance, Incident) and instance.id is None:
            instance.id = -secrets.randbelow(2**30) - 1


class AlarmIntake:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        config: Config,
        clock: Clock,
        metrics: Metrics | None = None,
        topics: TopicAccounts = OWN_ACCOUNTS,
    ) -> None:
        """`topics`: whose alarms each topic may bring (OPSBOT_SNS_TOPIC_ACCOUNTS)."""
        self.sessions = sessions
        self.config = config
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.topics = topics
        self._lock = threading.Lock()
        self._group: GroupCommit | None = None
        self._pending: deque[_Pending] = deque()
        self._pending_ids: set[int] = set()

    def start(self) -> None:
        """Start the batches' writer (bot/alarms/batch.py) before the first notification,
        with what a crash left pending to apply first."""
        self.sweep(older_than_s=0.0)
        self._batches().start()

    def submit(self, inbound: Inbound) -> Future[str]:
        """Record `inbound` with whatever arrives with it; the future resolves once committed."""
        return self._batches().submit(inbound)

    def waiting(self) -> int:
        """Notifications waiting for the next batch (tests, and the curious)."""
        return self._batches().waiting()

    def _batches(self) -> GroupCommit:
        with self._lock:
            if self._group is None:
                self._group = GroupCommit(
                    self.record_batch, later=self, on_error=self.metrics.intake_writer_error
                )
            return self._group

    def stop(self) -> None:
        """Record the notifications already queued; refuse any after (they get a 5xx)."""
        self._batches().stop()

    def record(self, inbound: Inbound) -> str:
        """Durably record one message and everything it causes; return the outcome."""
        [outcome] = self.record_batch([inbound])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def record_batch(self, inbounds: list[Inbound]) -> list[Outcome]:
        """Record `inbounds` and apply them in one transaction; each one's outcome, or the
        exception that kept it from being recorded (then nothing of it was committed)."""
        return self._batch(inbounds, self._receive)

    def record_later(self, inbounds: list[Inbound]) -> list[Outcome]:
        """Record `inbounds` in one transaction, to be applied by `apply_later`; each one's
        answer (RECORDED, or "duplicate"), or the exception that kept it from being recorded."""
        return self._batch(inbounds, self._record_pending)

    def backlog(self) -> int:
        """Notifications recorded for later and not applied yet (by this process)."""
        return len(self._pending)

    def _batch(self, inbounds: list[Inbound], work: _Work) -> list[Outcome]:
        if not inbounds:
            return []
        via = inbounds[0].via
        started = time.perf_counter()
        outcomes: list[Outcome]
        try:
            outcomes = list(self._record(inbounds, work))
        except UNAVAILABLE as exc:
            # Nothing of the batch was committed, and none would be alone: every one of
            # them fails (SNS and SQS deliver them again), none is tried again here.
            log.warning(
                "a batch of %d notifications via %s was not recorded: database unavailable (%s)",
                len(inbounds),
                via,
                type(exc).__name__,
                extra={
                    "message_ids": [i.message_id for i in inbounds],
                    "via": via,
                    "batch": len(inbounds),
                    "error": type(exc).__name__,
                },
            )
            outcomes = [exc] * len(inbounds)
        except Exception as exc:
            # One notification the database or this code refuses (a NUL in its text
            # on PostgreSQL, a bug): nothing of the batch was committed; alone, the
            # others are.
            if len(inbounds) == 1:
                outcomes = [exc]
            else:
                log.exception(
                    "a batch of %d notifications via %s failed; recording them one by one",
                    len(inbounds),
                    via,
                    extra={"message_ids": [i.message_id for i in inbounds], "via": via},
                )
                return self._one_by_one(inbounds, work)
        self.metrics.intake_batch_size.labels(via).observe(len(inbounds))
        self.metrics.intake_commit.labels(via).observe(time.perf_counter() - started)
        for inbound, outcome in zip(inbounds, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                counted = "error"
            else:
                counted = "duplicate" if outcome == "duplicate" else "new"
            self.metrics.notifications.labels(inbound.via, counted).inc()
        return outcomes

    def _one_by_one(self, inbounds: list[Inbound], work: _Work) -> list[Outcome]:
        """Each alone (each counted in its own call); once the database itself fails,
        the rest fail with it, at once, rather than each waiting for it in turn."""
        outcomes: list[Outcome] = []
        for inbound in inbounds:
            if outcomes and isinstance(outcomes[-1], UNAVAILABLE):
                outcomes.append(outcomes[-1])
                self.metrics.notifications.labels(inbound.via, "error").inc()
            else:
                outcomes.append(self._batch([inbound], work)[0])
        return outcomes

    def _receive(
        self, db_session: Session, inbounds: list[Inbound], now: datetime
    ) -> list[tuple[str, int | None]]:
        with counting_odd_fields(self._count_odd_field):
            return [
                (
                    receive(
                        db_session,
                        inbound=inbound,
                        config=self.config,
                        now=now,
                        topics=self.topics,
                    ),
                    None,
                )
                for inbound in inbounds
            ]

    def _count_odd_field(self, what: str) -> None:
        self.metrics.alarm_odd_fields.labels(what).inc()

    def _record_pending(
        self, db_session: Session, inbounds: list[Inbound], now: datetime
    ) -> list[tuple[str, int | None]]:
        rows = record_for_later(db_session, inbounds=inbounds, now=now, topics=self.topics)
        return [("duplicate", None) if row is None else (RECORDED, row) for row in rows]

    def _committed(self, work: Callable[[Session, datetime], _T]) -> tuple[_T, datetime]:
        """`work` in a transaction, committed; run again when another transaction got in
        the way. Its result and the time it ran with."""
        for attempt in range(1, ATTEMPTS + 1):
            with self.sessions() as db_session:
                now = self.clock.now()
                try:
                    done = work(db_session, now)
                    db_session.commit()
                    return done, now
                except IntegrityError:
                    # Another transaction opened one of these alarms' incidents first:
                    # go again. (A redelivery of the same MessageId is not an error:
                    # it is answered "duplicate".)
                    db_session.rollback()
                    if attempt == ATTEMPTS:
                        raise
                except OperationalError as exc:
                    db_session.rollback()
                    # PostgreSQL deadlock or serialization failure: retry; else re-raise.
                    code = getattr(exc.orig, "sqlstate", None)
                    if code not in {"40001", "40P01"} or attempt == ATTEMPTS:
                        raise
        raise AssertionError("unreachable")

    def _record(self, inbounds: list[Inbound], work: _Work) -> list[str]:
        done, now = self._committed(lambda db_session, now: work(db_session, inbounds, now))
        later = [(row, now) for _, row in done if row is not None]
        self._keep_pending(later)
        if later:
            # A storm's batch: one line, the ids to find each by.
            log.info(
                "%d notifications via %s recorded for later (%d duplicates)",
                len(later),
                inbounds[0].via,
                len(inbounds) - len(later),
                extra={
                    "message_ids": [i.message_id for i in inbounds],
                    "received_messages": [row for row, _ in later],
                    "via": inbounds[0].via,
                    "batch": len(inbounds),
                },
            )
        else:
            for inbound, (outcome, _) in zip(inbounds, done, strict=True):
                log.info(
                    "message %r via %s: %s",
                    inbound.message_id,
                    inbound.via,
                    outcome,
                    extra={
                        "message_id": inbound.message_id,
                        "via": inbound.via,
                        "batch": len(inbounds),
                    },
                )
        return [outcome for outcome, _ in done]

    # -- applying what was recorded for later ----------------------------------------------

    def _keep_pending(self, rows: list[_Pending]) -> None:
        with self._lock:
            for row in rows:
                if row[0] not in self._pending_ids:
                    self._pending_ids.add(row[0])
                    self._pending.append(row)
            self.metrics.intake_backlog.set(len(self._pending))

    def _take_pending(self, most: int) -> list[_Pending]:
        with self._lock:
            taken = [self._pending.popleft() for _ in range(min(most, len(self._pending)))]
            return taken

    def _done_pending(self, rows: list[_Pending]) -> None:
        with self._lock:
            self._pending_ids.difference_update(row for row, _ in rows)
            self.metrics.intake_backlog.set(len(self._pending))

    def _put_back(self, rows: list[_Pending]) -> None:
        with self._lock:
            self._pending.extendleft(reversed(rows))

    def apply_later(self, most: int = APPLY_SLICE) -> int:
        """Apply up to `most` of the notifications recorded for later, oldest first, in one
        transaction; how many were taken (0: none pending, or the database refused and
        they wait for the next call)."""
        rows = self._take_pending(most)
        if not rows:
            return 0
        try:
            outcomes = self._apply(rows)
        except UNAVAILABLE as exc:
            # The database: they stay pending, in order, for the next turn.
            self._put_back(rows)
            log.warning(
                "could not apply %d recorded notifications: %s",
                len(rows),
                exc,
                extra={"received_messages": [row for row, _ in rows], "error": type(exc).__name__},
            )
            return 0
        except Exception:
            if len(rows) > 1:
                # One of them this code or the database refuses: alone, the others go.
                return self._apply_each(rows)
            self._failed(rows[0])
            return 1
        self._applied(rows, outcomes)
        return len(rows)

    def _apply_each(self, rows: list[_Pending]) -> int:
        """Apply `rows` one at a time; how many were taken. Once the database itself fails,
        that one and the rest stay pending, in order (they are not what failed)."""
        for taken, row in enumerate(rows):
            try:
                outcomes = self._apply([row])
            except UNAVAILABLE as exc:
                self._put_back(rows[taken:])
                log.warning(
                    "could not apply recorded notification %s: %s",
                    row[0],
                    exc,
                    extra={
                        "received_messages": [r for r, _ in rows[taken:]],
                        "error": type(exc).__name__,
                    },
                )
                return taken
            except Exception:
                self._failed(row)
                continue
            self._applied([row], outcomes)
        return len(rows)

    def _apply(self, rows: list[_Pending]) -> list[str | None]:
        def work(db_session: Session, now: datetime) -> list[str | None]:
            # Counted here, not when recorded: each message once, as it is acted on.
            with counting_odd_fields(self._count_odd_field):
                return [
                    apply_recorded(
                        db_session,
                        received_id=row,
                        config=self.config,
                        now=now,
                        topics=self.topics,
                    )
                    for row, _ in rows
                ]

        outcomes, _ = self._committed(work)
        return outcomes

    def _applied(self, rows: list[_Pending], outcomes: list[str | None]) -> None:
        self._done_pending(rows)
        now = self.clock.now()
        for (row, recorded_at), outcome in zip(rows, outcomes, strict=True):
            if outcome is None:
                continue  # another instance applied it
            self.metrics.intake_apply_lag.observe(max(0.0, (now - recorded_at).total_seconds()))
            log.info(
                "recorded notification %s applied: %s",
                row,
                outcome,
                extra={"received_message": row, "lag_s": (now - recorded_at).total_seconds()},
            )

    def _failed(self, row: _Pending) -> None:
        """Applying it fails by itself: it is kept, marked, logged and counted, not retried
        for ever (SNS was answered; a person reads it in `received_messages`)."""
        log.exception("recorded notification %s cannot be applied", row[0])
        self.metrics.intake_apply_failed.inc()
        self._done_pending([row])
        try:
            with self.sessions() as db_session:
                update_rows(
                    db_session,
                    update(ReceivedMessage)
                    .where(ReceivedMessage.id == row[0], ReceivedMessage.outcome == PENDING)
                    .values(outcome="failed: could not be applied (see the log)"),
                )
                db_session.commit()
        except Exception as exc:
            # Whatever kept it from being marked, it stays pending in the database, and
            # a sweep takes it up again (this process no longer holds it).
            log.warning(
                "recorded notification %s stays pending (%s)",
                row[0],
                type(exc).__name__,
                extra={"received_message": row[0], "error": type(exc).__name__},
            )

    def sweep(self, *, older_than_s: float = ORPHANED_S) -> int:
        """Take up notifications left pending (by a crash, or by an instance gone since)
        recorded more than `older_than_s` ago; how many were new to this process."""
        since = self.clock.now() - timedelta(seconds=older_than_s)
        try:
            with self.sessions() as db_session:
                rows = db_session.execute(
                    select(ReceivedMessage.id, ReceivedMessage.received_at)
                    .where(ReceivedMessage.outcome == PENDING, ReceivedMessage.received_at <= since)
                    .order_by(ReceivedMessage.id)
                ).all()
        except UNAVAILABLE as exc:
            log.warning(
                "could not look for pending notifications: %s",
                exc,
                extra={"error": type(exc).__name__},
            )
            return 0
        before = self.backlog()
        self._keep_pending([(row_id, received_at) for row_id, received_at in rows])
        found = self.backlog() - before
        if found:
            log.info("%d recorded notifications left pending: applying them", found)
        return found

    def warm_up(self) -> None:
        """Run the intake's statements once, in a transaction that is rolled back.

        The first alarm after a start otherwise pays for compiling them and for
        the ORM's and the database connection's first use of each table: on
        PostgreSQL the first page's record took about 20 ms instead of 10 with an
        OK and a notice as the warm-up, and 10 with an alarm that opens and pages
        an incident as well. That incident takes a negative id, so that no incident
        number is used up (PostgreSQL sequences do not roll back).
        """
        now = self.clock.now()
        name = f"opsbot-warm-up-{uuid.uuid4().hex}"
        alarm = {
            "AlarmName": name,
            "AWSAccountId": WARM_UP_ACCOUNT,
            "NewStateValue": "ALARM",
            "OldStateValue": "OK",
        }
        ok = {**alarm, "NewStateValue": "OK", "OldStateValue": "ALARM"}
        # Routed as the first route that pages would route it, whatever its name.
        route = next(
            (r for r in self.config.alarm_routes if r.pagerduty_routing_key_env),
            self.config.alarm_routes[-1],
        )
        paging = self.config.model_copy(
            update={"alarm_routes": [route.model_copy(update={"match": AlarmMatch()})]}
        )
        # The real routes' patterns are compiled (and cached by fnmatch) here too.
        route_for(self.config.alarm_routes, alarm_name=name, account="", region="")
        with self.sessions() as db_session:
            event.listen(db_session, "before_flush", _negative_incident_ids)
            for body, config in (
                (json.dumps(alarm), paging),
                (json.dumps(ok), self.config),
                ("warm-up", self.config),
            ):
                inbound = Inbound(
                    message_id=f"{name}:{len(body)}",
                    via="warm-up",
                    body=body,
                    topic_arn=WARM_UP_TOPIC,
                )
                receive(db_session, inbound=inbound, config=config, now=now, topics=self.topics)
            db_session.flush()
            db_session.rollback()
