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

Each instance keeps the leases on its own entries ahead while it lives. An
entry whose lease ran out was left by an instance that died: any instance
removes it and answers its response_url (valid for thirty minutes) that the
request may not have been carried out, in one transaction, so once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

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


# Keys deleted by one statement.
DELETE_SLICE = 1000


@dataclass
class _Owed:
    key: str
    what: str
    response_url: str | None
    received_at: datetime


class _Batch(NamedTuple):
    new: dict[str, _Owed]  # entries to write
    done: set[str]  # keys of entries to delete
    answers: list[_Owed]  # work that raised, to answer

    def pieces(self) -> list[_Batch]:
        """What the database may take or refuse alone: each entry, the deletes, each answer."""
        pieces = [_Batch({key: owed}, set(), []) for key, owed in self.new.items()]
        crossed_out = self.done - {owed.key for owed in self.answers}
        if crossed_out:
            pieces.append(_Batch({}, crossed_out, []))
        # An answer goes with the delete of its entry, so that no instance answers
        # "stopped before it finished" as well, nor is the answer lost with the entry.
        pieces += [_Batch({}, self.done & {owed.key}, [owed]) for owed in self.answers]
        return pieces


def _database_trouble(exc: Exception) -> bool:
    """The database failed, not what was sent: unreachable, a connection lost, a timeout."""
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)):
        return True
    return bool(getattr(exc, "connection_invalidated", False))


class AfterAckJournal:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        clock: Clock,
        lease_s: float = LEASE_S,
        owner: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._lease = timedelta(seconds=lease_s)
        self.owner = owner or f"after-ack-{uuid.uuid4().hex[:12]}"
        self._lock = threading.Lock()
        self._owed: dict[str, _Owed] = {}  # work not yet done, by key
        self._to_write: set[str] = set()  # owed, its entry not yet written
        # Entries sent to the database, whether the commit's answer came or not:
        # deleted when their work ends, whatever became of them.
        self._sent: set[str] = set()
        self._to_delete: set[str] = set()
        self._to_answer: list[_Owed] = []  # work that raised: its person is told
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Entries of others are swept only after two renewals in a row reached
        # the database: after an outage of it, every living instance has then
        # had its turn to renew before anyone's entries count as left behind.
        self._renewed_last_time = False

    def write(self, what: str, response_url: str | None) -> str:
        """Note work queued behind an acknowledgement; the key to cross it out with."""
        key = uuid.uuid4().hex
        with self._lock:
            self._owed[key] = _Owed(key, what[:120], response_url, self._clock.now())
            self._to_write.add(key)
        return key

    def cross_out(self, key: str) -> None:
        with self._lock:
            self._done(key)

    def failed(self, key: str) -> None:
        """The work of `key` raised: cross it out and tell its person at the next flush."""
        with self._lock:
            owed = self._done(key)
            if owed is not None:
                self._to_answer.append(owed)

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
        with self._sessions() as db_session:
            if batch.new:
                dialect = (
                    postgresql if db_session.get_bind().dialect.name == "postgresql" else sqlite
                )
                db_session.execute(
                    dialect.insert(AfterAckWork).on_conflict_do_nothing(index_elements=["key"]),
                    [self._row(key, owed) for key, owed in batch.new.items()],
                )
            # In slices: a long outage piles up deletes past what one statement may
            # bind (PostgreSQL 65,535 parameters; SQLite 250,000), which would fail
            # every flush after it.
            done = sorted(batch.done)
            for start in range(0, len(done), DELETE_SLICE):
                keys = done[start : start + DELETE_SLICE]
                db_session.execute(delete(AfterAckWork).where(AfterAckWork.key.in_(keys)))
            for owed in batch.answers:
                if owed.response_url:
                    text = failed_text(owed.what, slack_date(owed.received_at))
                    reply(
                        db_session,
                        response_url=owed.response_url,
                        body=ephemeral(text),
                        now=self._clock.now(),
                    )
            db_session.commit()

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
                        "journal entry of a %s refused (%s), given up", owed.what, refused[at]
                    )
                for owed in piece.answers:
                    log.error(
                        "answer to a failed %s refused (%s), given up", owed.what, refused[at]
                    )
        self._put_back(
            _Batch(
                {key: owed for piece in kept for key, owed in piece.new.items()},
                {key for piece in kept for key in piece.done},
                [owed for piece in kept for owed in piece.answers],
            )
        )

    def tend(self) -> int:
        """Renew this instance's leases, then answer entries left by dead ones; how many."""
        now = self._clock.now()
        try:
            with self._sessions() as db_session:
                db_session.execute(
                    update(AfterAckWork)
                    .where(AfterAckWork.owner == self.owner)
                    .values(lease_until=now + self._lease)
                )
                db_session.commit()
        except SQLAlchemyError as exc:
            self._renewed_last_time = False
            log.warning("after-ack leases not renewed (%s)", type(exc).__name__)
            return 0
        if not self._renewed_last_time:
            self._renewed_last_time = True
            return 0
        try:
            return self._sweep(now)
        except SQLAlchemyError as exc:
            log.warning("work left by stopped instances not swept (%s)", type(exc).__name__)
            return 0

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="after-ack-journal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()  # the deletes of the work finished last

    def _run(self) -> None:
        tend_every_s = self._lease.total_seconds() / RENEWALS_PER_LEASE
        next_tend = time.monotonic() + tend_every_s
        while not self._stopping.wait(FLUSH_S):
            try:
                self.flush()
                if time.monotonic() >= next_tend:
                    next_tend = time.monotonic() + tend_every_s
                    swept = self.tend()
                    if swept:
                        log.warning(
                            "%d piece(s) of work left by a stopped instance: answered", swept
                        )
            except Exception:
                log.exception("the after-ack journal failed; going on")

    def _row(self, key: str, owed: _Owed) -> dict[str, Any]:
        return {
            "key": key,
            "what": owed.what,
            "response_url": owed.response_url,
            "owner": self.owner,
            "lease_until": self._clock.now() + self._lease,
            "received_at": owed.received_at,
        }

    def _sweep(self, now: datetime) -> int:
        with self._sessions() as db_session:
            left = db_session.scalars(
                select(AfterAckWork)
                .where(AfterAckWork.lease_until < now, AfterAckWork.owner != self.owner)
                .order_by(AfterAckWork.received_at)
                .limit(SWEEP_BATCH)
                .with_for_update(skip_locked=True)
            ).all()
            for entry in left:
                if entry.response_url:
                    received = slack_date(entry.received_at)
                    reply(
                        db_session,
                        response_url=entry.response_url,
                        body=ephemeral(unfinished_text(entry.what, received)),
                        now=now,
                    )
                db_session.delete(entry)
            db_session.commit()
        return len(left)
