"""What Slack commands and clicks are still owed, written down so that a crash loses none unsaid.

The work behind an acknowledgement waits in memory (bot/after_ack.py); in a
flood it can wait there for many seconds. An instance killed then (SIGKILL, out
of memory, the host gone) takes that work with it, and the person who clicked
saw only the acknowledgement. Running the work again elsewhere is not safe: a
`/deploy` may have been half done. So each piece is written down while it is
owed and crossed out when done, and the person is told when it never will be.
Work that raised is answered too ("went wrong, part may be done"), at the next
flush, in the transaction that deletes its entry: a command or a click on a
message never ends in silence. (A click on App Home, or a mention, has no
response_url: its failure is logged and counted only.)

Writing happens in batches, every `FLUSH_S`, off the acknowledging threads: a
database transaction per request made acknowledgements in a flood measurably
slower, and at a batch every 50 ms this thread still took a ninth of the
process's CPU in the acknowledgement benchmark's flood (per-thread CPU from
/proc). Work done within one batch interval (most of it, most of the time)
never reaches the database at all. A crash in that interval goes unsaid.

A flush that failed may still have written its entries (the commit reached
the database, its answer did not): so the insert skips a key already there, and
an entry once sent is deleted when its work ends, written or not (deleting an
absent row does nothing). A batch the database refuses for a reason other than
the database itself (unreachable, a lost connection, a timeout) is written again
piece by piece, each in a transaction of its own, so that one piece it cannot
take holds up no other. A piece refused while others are taken is logged and
given up (an entry: its work still runs, and is answered for if it raises); when
none is taken, the fault is more likely the database's, and all are kept.

Each instance keeps the leases on its own entries ahead while it lives, on a
connection and a thread of their own: a flush or a sweep waiting for the main
pool (in a storm the intake holds all of it) must not let a living instance's
leases run out. An entry whose lease ran out was left by an instance that died:
any instance removes it and answers its response_url (valid for thirty minutes)
that the request may not have been carried out.

Every answer, whoever gives it, goes in the transaction that deletes the entry,
and only when that delete found it (or no row of it can have been there): so a
person is told once, even when an instance that lost its leases (cut off from
the database) comes back and finds its entries answered by another. That
instance starts none of the work whose lease may have lapsed: work not started
is answered "not done", work found answered by another is dropped unsaid, and
each is logged with its key and counted. Work still unfinished when the
response_url is about to expire is answered then ("may or may not get done"),
and its entry is no longer renewed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.inbound.models import AfterAckWork
from bot.outbox.replies import ephemeral, reply
from bot.slack_dates import slack_date
from bot.slack_text import escape

log = logging.getLogger(__name__)

LEASE_S = 60.0
# Leases are renewed this many times within one, so that a renewal or two
# lost to a slow database does not make a living instance look dead.
RENEWALS_PER_LEASE = 4
FLUSH_S = 0.2
SWEEP_BATCH = 100
# A piece running this long is stuck (a client call without a timeout, a lock):
# a click's work is a few calls of seconds each. Logged once, with its key, well
# before `OVERDUE_S`, so that on-call can look while its person can still be told.
SLOW_S = 5 * 60.0
# Slack takes answers through a response_url for thirty minutes after the click:
# work unfinished at 25 is answered then, leaving the outbox five minutes (a retry or
# two) to deliver it, and its entry is no longer renewed.
OVERDUE_S = 25 * 60.0


# `what` names the work in opsbot's own words (bot/after_ack.py): escaped all the same,
# as it is stored and read back, and one careless name must not become a link.
def unfinished_text(what: str, received: str) -> str:
    return (
        f"opsbot stopped before it finished your {escape(what)} ({received}). "
        "It may or may not have been done: check, and ask again if need be."
    )


def failed_text(what: str, received: str) -> str:
    return (
        f"Something went wrong on opsbot's side with your {escape(what)} ({received}); "
        "it is logged. Part of it may have been done: check before asking again."
    )


def not_started_text(what: str, received: str) -> str:
    return (
        f"opsbot could not start your {escape(what)} ({received}) in time, and did not "
        "carry it out: nothing of it was done. Ask again if need be."
    )


def overdue_text(what: str, received: str) -> str:
    # The work still runs and may yet finish: worded like the sweep's answer.
    return (
        f"opsbot is still on your {escape(what)} ({received}), far longer than it should "
        "take. It may or may not get done: check later, before asking again."
    )


# Keys deleted by one statement.
DELETE_SLICE = 1000


@dataclass
class _Owed:
    key: str
    what: str
    response_url: str | None
    received_at: datetime
    # The lease of the first row of it sent to the database (the earliest it may
    # hold there), moved on by each renewal that found it; None while no row of it
    # can be there (never sent, or refused before its commit).
    lease_until: datetime | None = None
    written: bool = False  # a commit of its row is known to have been made
    started_at: datetime | None = None
    warned: bool = False  # logged as slow
    # Its person is told (or was, by another instance): nothing more is said of it.
    answered: bool = False
    lost: bool = False  # its entry was answered by another instance while still owed


class _Answer(NamedTuple):
    owed: _Owed
    text: str


class _Batch(NamedTuple):
    new: dict[str, _Owed]  # entries to write
    done: set[str]  # keys of entries to delete
    answers: list[_Answer]  # each deletes its own entry, and is given only if it found it

    def pieces(self) -> list[_Batch]:
        """What the database may take or refuse alone: each entry, the deletes, each answer."""
        pieces = [_Batch({key: owed}, set(), []) for key, owed in self.new.items()]
        crossed_out = self.done - {answer.owed.key for answer in self.answers}
        if crossed_out:
            pieces.append(_Batch({}, crossed_out, []))
        # An answer goes with the delete of its entry (kept if the answer is given up).
        pieces += [_Batch({}, self.done & {answer.owed.key}, [answer]) for answer in self.answers]
        return pieces


class _Left(NamedTuple):
    """An entry a sweep answered, for its log line (never its response_url)."""

    key: str
    what: str
    owner: str
    received_at: datetime


class _Attempt:
    """How far one write got: a failure before its commit wrote nothing."""

    committing = False


class Meters(Protocol):
    """What of bot/observability/metrics.py's Metrics the journal feeds."""

    @property
    def after_ack_unfinished(self) -> Any: ...
    @property
    def after_ack_leases_lost(self) -> Any: ...
    @property
    def after_ack_given_up(self) -> Any: ...
    @property
    def after_ack_journal_failures(self) -> Any: ...


def _database_trouble(exc: Exception) -> bool:
    """The database failed, not what was sent: unreachable, a connection lost, a timeout."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


def _ids(owed: _Owed) -> dict[str, str]:
    """An entry's ids for a log line (never its response_url)."""
    return {"journal_key": owed.key, "work": owed.what}


class AfterAckJournal:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        clock: Clock,
        lease_s: float = LEASE_S,
        owner: str | None = None,
        leases: sessionmaker[Session] | None = None,
        metrics: Meters | None = None,
        overdue_s: float = OVERDUE_S,
        slow_s: float = SLOW_S,
    ) -> None:
        """`leases`: sessions of a connection of their own for renewing leases (else `sessions`)."""
        self._sessions = sessions
        self._leases = leases or sessions
        self._clock = clock
        self._metrics = metrics
        self._lease = timedelta(seconds=lease_s)
        self._renew_every = self._lease / RENEWALS_PER_LEASE
        self._overdue = timedelta(seconds=overdue_s)
        self._slow = timedelta(seconds=slow_s)
        self.owner = owner or f"after-ack-{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self._owed: dict[str, _Owed] = {}  # work not yet done, by key
        self._to_write: set[str] = set()  # owed, its entry not yet written
        # Entries sent to the database, whether the commit's answer came or not:
        # deleted when their work ends, whatever became of them.
        self._sent: set[str] = set()
        self._to_delete: set[str] = set()
        self._to_answer: list[_Answer] = []  # their person is told at the next flush
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # Entries of others are swept only after two renewals in a row reached
        # the database: after an outage of it, every living instance has then
        # had its turn to renew before anyone's entries count as left behind.
        self._renewed_last_time = False
        self._renewed_twice = False

    def write(self, what: str, response_url: str | None) -> str:
        """Note work queued behind an acknowledgement; the key to cross it out with."""
        key = uuid.uuid4().hex
        with self._lock:
            self._owed[key] = _Owed(key, what[:120], response_url, self._clock.now())
            self._to_write.add(key)
        return key

    def begin(self, key: str) -> bool:
        """The work of `key` is about to start: False when it must not (its person is told).

        Not when its lease may have lapsed (another instance may be answering it
        as lost right now), nor when it waited past `OVERDUE_S`.
        """
        now = self._clock.now()
        with self._lock:
            owed = self._owed.get(key)
            if owed is None:
                return True
            if owed.lost or owed.answered:
                self._done(key)  # told already, and logged then
                reason = None
            elif owed.lease_until is not None and now >= owed.lease_until - self._renew_every:
                reason = "lease"
            elif now - owed.received_at >= self._overdue:
                reason = "late"
            else:
                owed.started_at = now
                return True
            if reason is not None:
                self._done(key)
                owed.answered = True
                received = slack_date(owed.received_at)
                self._to_answer.append(_Answer(owed, not_started_text(owed.what, received)))
        if reason is None:
            log.warning(
                "%s (entry %s) not started: its person was told already",
                owed.what,
                key,
                extra=_ids(owed),
            )
            return False
        log.error(
            "%s (entry %s) not started: %s; answered as not done",
            owed.what,
            key,
            "its lease may have lapsed" if reason == "lease" else "it waited too long",
            extra={**_ids(owed), "reason": reason},
        )
        if self._metrics is not None:
            self._metrics.after_ack_given_up.labels(reason).inc()
        return False

    def cross_out(self, key: str) -> None:
        with self._lock:
            self._done(key)

    def failed(self, key: str) -> None:
        """The work of `key` raised: cross it out and tell its person at the next flush."""
        with self._lock:
            owed = self._done(key)
            if owed is None or owed.answered or owed.lost:
                return  # told already (or by another instance): once is enough
            owed.answered = True
            received = slack_date(owed.received_at)
            self._to_answer.append(_Answer(owed, failed_text(owed.what, received)))

    def flush(self) -> None:
        """Write down what is owed since the last flush, and delete what was done since."""
        with self._lock:
            new = {key: self._owed[key] for key in self._to_write}
            self._to_write = set()
            self._sent |= new.keys()
            done, self._to_delete = self._to_delete, set()
            answers, self._to_answer = self._to_answer, []
        if not new and not done and not answers:
            return
        batch = _Batch(new, done, answers)
        try:
            self._write(batch)
        except Exception as exc:
            # Tried again at the next flush; the work itself runs all the same.
            log.warning("after-ack journal not written (%s)", type(exc).__name__)
            self._failed_step("flush")
            pieces = batch.pieces()
            if _database_trouble(exc) or len(pieces) == 1:
                self._put_back(batch)
            else:
                self._piece_by_piece(pieces)

    def _done(self, key: str) -> _Owed | None:
        """Forget the work of `key`; its entry is deleted at the next flush if it was sent."""
        owed = self._owed.pop(key, None)
        self._to_write.discard(key)
        if key in self._sent:
            self._sent.discard(key)
            self._to_delete.add(key)
        return owed

    def _write(self, batch: _Batch) -> None:
        attempt = _Attempt()
        fresh: list[_Owed] = []  # entries whose first row this is
        try:
            self._write_once(batch, attempt, fresh)
        except BaseException:
            if not attempt.committing:
                with self._lock:
                    for owed in fresh:
                        owed.lease_until = None  # nothing of it reached the database
            raise
        with self._lock:
            for owed in batch.new.values():
                owed.written = True

    def _write_once(self, batch: _Batch, attempt: _Attempt, fresh: list[_Owed]) -> None:
        with self._sessions() as db_session:
            if batch.new:
                dialect = (
                    postgresql if db_session.get_bind().dialect.name == "postgresql" else sqlite
                )
                # The lease from once a connection is had: a wait for one (a storm holding
                # the pool) must not eat into it, or the work is refused as lapsed.
                db_session.connection()
                lease_until = self._clock.now() + self._lease
                with self._lock:
                    for owed in batch.new.values():
                        if owed.lease_until is None:
                            owed.lease_until = lease_until
                            fresh.append(owed)
                db_session.execute(
                    dialect.insert(AfterAckWork).on_conflict_do_nothing(index_elements=["key"]),
                    [self._row(key, owed, lease_until) for key, owed in batch.new.items()],
                )
            # In slices: a long outage piles up deletes past what one statement may
            # bind (PostgreSQL 65,535 parameters; SQLite 250,000), which would fail
            # every flush after it. An answer's entry is deleted with the answer.
            done = sorted(batch.done - {answer.owed.key for answer in batch.answers})
            for start in range(0, len(done), DELETE_SLICE):
                keys = done[start : start + DELETE_SLICE]
                db_session.execute(delete(AfterAckWork).where(AfterAckWork.key.in_(keys)))
            for answer in batch.answers:
                self._answer(db_session, answer)
            attempt.committing = True
            db_session.commit()

    def _answer(self, db_session: Session, answer: _Answer) -> None:
        """Delete the entry of `answer` and give it, unless another instance answered it.

        A row found is ours to answer. A row not found was never written while
        its lease cannot have passed (no instance sweeps an entry before), and was
        swept, its person told, once it has.
        """
        owed = answer.owed
        found = db_session.scalars(
            delete(AfterAckWork)
            .where(AfterAckWork.key == owed.key)
            .returning(AfterAckWork.key)
            .execution_options(synchronize_session=False)
        ).first()
        now = self._clock.now()
        if not found and owed.lease_until is not None and now >= owed.lease_until:
            log.warning(
                "%s (entry %s) not answered: its entry was gone, answered by another instance",
                owed.what,
                owed.key,
                extra=_ids(owed),
            )
            return
        if owed.response_url:
            reply(
                db_session,
                response_url=owed.response_url,
                body=ephemeral(answer.text),
                now=now,
            )

    def _put_back(self, batch: _Batch) -> None:
        with self._lock:
            # Work crossed out meanwhile has its delete queued already.
            self._to_write.update(key for key in batch.new if key in self._owed)
            self._to_delete |= batch.done
            self._to_answer[:0] = batch.answers

    def _piece_by_piece(self, pieces: list[_Batch]) -> None:
        """Write each piece of a refused batch alone; give up those refused while others went in.

        A piece refused while the database takes the others is refused for what
        it holds, and would be every time. When it takes none, the fault is more
        likely its own (a migration half done): all are kept for the next flush.
        """
        refused: dict[int, str] = {}  # the error of each piece refused, by its place
        tried = 0
        for piece in pieces:
            try:
                self._write(piece)
            except Exception as exc:
                if _database_trouble(exc):
                    break  # this piece and those after it wait for the next flush
                refused[tried] = type(exc).__name__
            tried += 1
        took_some = tried > len(refused)
        kept: list[_Batch] = []
        for at, piece in enumerate(pieces):
            if at >= tried or (at in refused and not took_some):
                kept.append(piece)
            elif at in refused:
                # Deletes name only keys opsbot chose: nothing in them to refuse.
                kept.append(_Batch({}, piece.done, []))
                for owed in piece.new.values():
                    log.error(
                        "journal entry of a %s refused (%s), given up",
                        owed.what,
                        refused[at],
                        extra=_ids(owed),
                    )
                for answer in piece.answers:
                    log.error(
                        "answer to a failed %s refused (%s), given up",
                        answer.owed.what,
                        refused[at],
                        extra=_ids(answer.owed),
                    )
        self._put_back(
            _Batch(
                {key: owed for piece in kept for key, owed in piece.new.items()},
                {key for piece in kept for key in piece.done},
                [answer for piece in kept for answer in piece.answers],
            )
        )

    def tend(self) -> int:
        """Renew this instance's leases, then answer entries left by dead ones; how many."""
        self.renew()
        self.look_at_ages()
        return self.sweep()

    def renew(self) -> bool:
        """Keep this instance's leases ahead; False when the database could not be reached.

        An entry this instance wrote and still owes that the renewal no longer
        finds was answered as lost by another instance: logged, counted, and its
        work is not started if it has not been.
        """
        with self._lock:
            # Known to be in the database before the renewal starts: each must be found.
            expected = [
                owed
                for owed in self._owed.values()
                if owed.written and not owed.answered and not owed.lost
            ]
        try:
            with self._leases() as db_session:
                db_session.connection()  # `now` once a connection is had, however long that took
                now = self._clock.now()
                lease_until = now + self._lease
                renewed = set(
                    db_session.scalars(
                        update(AfterAckWork)
                        .where(
                            AfterAckWork.owner == self.owner,
                            AfterAckWork.received_at > now - self._overdue,
                        )
                        .values(lease_until=lease_until)
                        .returning(AfterAckWork.key)
                        .execution_options(synchronize_session=False)
                    )
                )
                db_session.commit()
        except SQLAlchemyError as exc:
            self._renewed_last_time = self._renewed_twice = False
            log.warning("after-ack leases not renewed (%s)", type(exc).__name__)
            self._failed_step("renew")
            return False
        self._renewed_twice, self._renewed_last_time = self._renewed_last_time, True
        with self._lock:
            for key in renewed:
                if (owed := self._owed.get(key)) is not None:
                    owed.written = True
                    owed.lease_until = lease_until
            lost = [
                owed
                for owed in expected
                if owed.key not in renewed
                and owed.key in self._owed
                and not owed.answered
                and now - owed.received_at < self._overdue
            ]
            for owed in lost:
                owed.lost = True
        for owed in lost:
            log.error(
                "%s (entry %s, received %s) was answered as lost by another instance while "
                "this one still owed it: its leases were not renewed in time",
                owed.what,
                owed.key,
                owed.received_at.isoformat(),
                extra={**_ids(owed), "started": owed.started_at is not None},
            )
            if self._metrics is not None:
                self._metrics.after_ack_leases_lost.labels(owed.what).inc()
        return True

    def look_at_ages(self) -> None:
        """Log work running longer than `SLOW_S`; answer what is unfinished at `OVERDUE_S`."""
        now = self._clock.now()
        slow: list[_Owed] = []
        overdue: list[_Owed] = []
        with self._lock:
            for owed in self._owed.values():
                if owed.answered or owed.lost:
                    continue
                started = owed.started_at
                if started is not None and not owed.warned and now - started >= self._slow:
                    owed.warned = True
                    slow.append(owed)
                if now - owed.received_at >= self._overdue:
                    owed.answered = True
                    overdue.append(owed)
                    received = slack_date(owed.received_at)
                    # Not started: `begin` will not start it.
                    text = (overdue_text if owed.started_at else not_started_text)(
                        owed.what, received
                    )
                    self._to_answer.append(_Answer(owed, text))
        for owed in slow:
            log.warning(
                "%s (entry %s) has been running for %.0f s",
                owed.what,
                owed.key,
                (now - (owed.started_at or now)).total_seconds(),
                extra=_ids(owed),
            )
        for owed in overdue:
            running = owed.started_at is not None
            log.warning(
                "%s (entry %s, received %s) is unfinished near the end of its response_url: "
                "answered (%s)",
                owed.what,
                owed.key,
                owed.received_at.isoformat(),
                "still running" if running else "not started, and will not be",
                extra={**_ids(owed), "started": running},
            )
            if self._metrics is not None:
                self._metrics.after_ack_given_up.labels("overdue" if running else "late").inc()

    def sweep(self) -> int:
        """Answer entries left by stopped instances; how many."""
        if not self._renewed_twice:
            return 0
        try:
            left = self._sweep()
        except SQLAlchemyError as exc:
            log.warning("work left by stopped instances not swept (%s)", type(exc).__name__)
            self._failed_step("sweep")
            return 0
        for entry in left:
            log.warning(
                "%s (entry %s, received %s) left unfinished by stopped instance %s: answered",
                entry.what,
                entry.key,
                entry.received_at.isoformat(),
                entry.owner,
                extra={
                    "journal_key": entry.key,
                    "work": entry.what,
                    "owner": entry.owner,
                    "received_at": entry.received_at.isoformat(),
                },
            )
            if self._metrics is not None:
                self._metrics.after_ack_unfinished.labels(entry.what).inc()
        return len(left)

    def start(self) -> None:
        self._stopping.clear()
        self._threads = [
            threading.Thread(target=self._run, name="after-ack-journal", daemon=True),
            threading.Thread(target=self._run_leases, name="after-ack-leases", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []
        self.flush()  # the deletes of the work finished last

    def _run(self) -> None:
        sweep_every_s = self._renew_every.total_seconds()
        next_sweep = time.monotonic() + sweep_every_s
        while not self._stopping.wait(FLUSH_S):
            try:
                self.flush()
                if time.monotonic() >= next_sweep:
                    next_sweep = time.monotonic() + sweep_every_s
                    self.sweep()
            except Exception:
                log.exception("the after-ack journal failed; going on")

    def _run_leases(self) -> None:
        # Its own thread: a flush or a sweep waiting on the main pool holds up no renewal.
        while not self._stopping.wait(self._renew_every.total_seconds()):
            try:
                self.renew()
                self.look_at_ages()
            except Exception:
                log.exception("the after-ack journal's leases failed; going on")

    def _failed_step(self, step: str) -> None:
        if self._metrics is not None:
            self._metrics.after_ack_journal_failures.labels(step).inc()

    def _row(self, key: str, owed: _Owed, lease_until: datetime) -> dict[str, Any]:
        return {
            "key": key,
            "what": owed.what,
            "response_url": owed.response_url,
            "owner": self.owner,
            "lease_until": lease_until,
            "received_at": owed.received_at,
        }

    def _sweep(self) -> list[_Left]:
        with self._sessions() as db_session:
            db_session.connection()  # `now` once a connection is had, however long that took
            now = self._clock.now()
            left = list(
                db_session.scalars(
                    select(AfterAckWork)
                    .where(AfterAckWork.lease_until < now, AfterAckWork.owner != self.owner)
                    .order_by(AfterAckWork.received_at)
                    .limit(SWEEP_BATCH)
                    .with_for_update(skip_locked=True)
                ).all()
            )
            answered = []
            for entry in left:
                if entry.response_url:
                    received = slack_date(entry.received_at)
                    reply(
                        db_session,
                        response_url=entry.response_url,
                        body=ephemeral(unfinished_text(entry.what, received)),
                        now=now,
                    )
                answered.append(_Left(entry.key, entry.what, entry.owner, entry.received_at))
                db_session.delete(entry)
            db_session.commit()
        return answered
