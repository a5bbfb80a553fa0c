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
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
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


@dataclass
class _Owed:
    what: str
    response_url: str | None
    received_at: datetime


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
        self._unwritten: dict[str, _Owed] = {}
        self._written: dict[str, _Owed] = {}
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
            self._unwritten[key] = _Owed(what[:120], response_url, self._clock.now())
        return key

    def cross_out(self, key: str) -> None:
        with self._lock:
            if self._unwritten.pop(key, None) is None and key in self._written:
                del self._written[key]
                self._to_delete.add(key)

    def failed(self, key: str) -> None:
        """The work of `key` raised: cross it out and tell its person at the next flush."""
        with self._lock:
            owed = self._unwritten.pop(key, None)
            if owed is None:
                owed = self._written.pop(key, None)
                if owed is None:
                    return
                self._to_delete.add(key)
            self._to_answer.append(owed)

    def flush(self) -> None:
        """Write down what is owed since the last flush, and delete what was done since."""
        with self._lock:
            new, self._unwritten = self._unwritten, {}
            self._written.update(new)
            done, self._to_delete = self._to_delete, set()
            answers, self._to_answer = self._to_answer, []
        if not new and not done and not answers:
            return
        rows = [self._row(key, owed) for key, owed in new.items()]
        try:
            with self._sessions() as db_session:
                if rows:
                    db_session.execute(insert(AfterAckWork), rows)
                if done:
                    db_session.execute(delete(AfterAckWork).where(AfterAckWork.key.in_(done)))
                for owed in answers:
                    if owed.response_url:
                        text = failed_text(owed.what, slack_date(owed.received_at))
                        reply(
                            db_session,
                            response_url=owed.response_url,
                            body=ephemeral(text),
                            now=self._clock.now(),
                        )
                db_session.commit()
        except SQLAlchemyError as exc:
            # Tried again at the next flush; the work itself runs all the same.
            log.warning("after-ack journal not written (%s)", type(exc).__name__)
            with self._lock:
                for key in new:
                    self._written.pop(key, None)
                for key, owed in new.items():
                    if key not in self._to_delete:
                        self._unwritten[key] = owed
                self._to_delete -= new.keys()
                self._to_delete |= done
                self._to_answer[:0] = answers

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
