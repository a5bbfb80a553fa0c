"""Pages and answers that leave the moment they are committed, not at the worker's next pass.

A new PagerDuty trigger, an answer through a response_url, a person's
PagerDuty REST call or a click's update of a posted Slack message is written
already claimed by this process's outbox worker (a lease, like the worker's own
claims) when nothing else is pending under its order key, its target is not
being paced and one of the worker's senders is free for its family (the service
it calls: `OutboxWorker._may_take`); right after the commit the
worker sends it. Should the process die in between, the lease runs out and any
instance's worker sends it then, as it would any claimed delivery (PagerDuty's
dedup key keeps a second trigger from opening a second incident).

The lease holds one of the worker's senders from the claim until its
transaction ends, so transactions running side by side claim no more than the
free senders: a claim that waited behind others for a sender would spend its
lease, and another instance could take it meanwhile. What a SAVEPOINT claimed
goes with it when it is rolled back, and waits for the enclosing transaction's
commit when it is released; the rest of the transaction's claims stand.

It saves each of them the worker's wake-up, its query for due work and its
claim: for the first page of a storm, time spent next to the following alarms'
transactions; under a flood of clicks, two transactions per answer.
Other Slack messages and thread replies are left to the worker, which folds
their pending updates together (a click's update that finds another of its
message still on its way is folded too).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from bot.outbox.results import Job

CLAIMANT = "outbox_claimant"  # Session.info: the worker transactions claim for
CLAIMED = "outbox_claimed"  # Session.info: what they claimed, to send after the commit
HELD = "outbox_held"  # Session.info: the reservations (with their order keys) holding a sender

# What a claim or a held sender was taken in: the innermost SAVEPOINT then, or
# None for the transaction itself.
Savepoint = SessionTransaction | None


class Claimant(Protocol):
    """Whom a transaction claims deliveries for."""

    instance_id: str

    def lease_until(
        self, *, kind: str, target: str, order_key: str, now: datetime
    ) -> datetime | None:
        """The end of a lease on a delivery of `kind` not yet written, or None: it waits
        its turn."""


class Reservation(Protocol):
    """One of the worker's senders held for one claim, told apart from any other by its
    identity: a reservation that outlived its lease may be followed by another under the
    same order key, and what is done for the one must not touch the other."""

    @property
    def until(self) -> datetime:
        """The end of the lease of the claim it is for."""


class Worker(Protocol):
    instance_id: str

    def reserve(
        self, *, kind: str, target: str, order_key: str, now: datetime
    ) -> Reservation | None:
        """A sender held for a delivery of `kind` not yet written, until `send_claimed` or
        `release`; or None: it waits its turn."""

    def send_claimed(self, jobs: list[tuple[Job, str, Reservation | None]]) -> None:
        """Send (job, order_key, reservation) claimed for this instance by a committed
        transaction, each under the reservation it was claimed with."""

    def release(self, reservations: Collection[tuple[str, Reservation]]) -> None:
        """Give back (order_key, reservation) unused: nothing claimed with them is sent."""


# Session.info's entries: (taken in, order key, reservation) under HELD, and under
# CLAIMED (taken in, job, order key, the reservation it was claimed with).
Held = tuple[Savepoint, str, Reservation]
Claimed = tuple[Savepoint, Job, str, Reservation | None]


class _InTransaction:
    """The worker as one session's transaction claims for: each sender a lease holds is
    noted in the session, to be given back when what it was taken in ends."""

    def __init__(self, worker: Worker, db_session: Session) -> None:
        self.instance_id = worker.instance_id
        self._worker = worker
        self._db_session = db_session

    def lease_until(
        self, *, kind: str, target: str, order_key: str, now: datetime
    ) -> datetime | None:
        reservation = self._worker.reserve(kind=kind, target=target, order_key=order_key, now=now)
        if reservation is None:
            return None
        held = self._db_session.info.setdefault(HELD, [])
        held.append((self._db_session.get_nested_transaction(), order_key, reservation))
        return reservation.until


def send_at_once(sessions: sessionmaker[Session], worker: Worker) -> None:
    """Let transactions of sessions from `sessions` claim for `worker`."""
    sessions.configure(info={CLAIMANT: worker})


def claimant_of(db_session: Session) -> Claimant | None:
    worker: Worker | None = db_session.info.get(CLAIMANT)
    return None if worker is None else _InTransaction(worker, db_session)


def note_claimed(db_session: Session, job: Job, order_key: str) -> None:
    """`job` was written claimed under the lease this session reserved last under
    `order_key` (the claim follows its reservation at once)."""
    held: list[Held] = db_session.info.get(HELD, [])
    reservation = next((r for _, key, r in reversed(held) if key == order_key), None)
    claimed = db_session.info.setdefault(CLAIMED, [])
    claimed.append((db_session.get_nested_transaction(), job, order_key, reservation))


def committed(db_session: Session) -> None:
    """The session's transaction committed: what it claimed goes to the worker to send,
    and the senders held for leases it did not use are given back."""
    claimed: list[Claimed] = db_session.info.pop(CLAIMED, [])
    held: list[Held] = db_session.info.pop(HELD, [])
    worker: Worker | None = db_session.info.get(CLAIMANT)
    if worker is None:
        return
    jobs = [(job, order_key, reservation) for _, job, order_key, reservation in claimed]
    if jobs:
        worker.send_claimed(jobs)
    used = {id(reservation) for _, _, reservation in jobs}
    unused = [(key, reservation) for _, key, reservation in held if id(reservation) not in used]
    if unused:
        worker.release(unused)


def rolled_back(db_session: Session, transaction: SessionTransaction) -> None:
    """A rollback of `transaction`: when that undid a SAVEPOINT, what was claimed in it (its
    rows are gone) is forgotten and its senders given back; what the transaction claimed
    around it stands. A rollback of the transaction itself is left to `ended`."""
    savepoint = _undone(transaction)
    if savepoint is None:
        return
    claimed: list[Claimed] = db_session.info.pop(CLAIMED, [])
    held: list[Held] = db_session.info.pop(HELD, [])
    kept = [c for c in claimed if not _within(c[0], savepoint)]
    if kept:
        db_session.info[CLAIMED] = kept
    still_held = [h for h in held if not _within(h[0], savepoint)]
    if still_held:
        db_session.info[HELD] = still_held
    given_back = [
        (key, reservation) for taken_in, key, reservation in held if _within(taken_in, savepoint)
    ]
    worker: Worker | None = db_session.info.get(CLAIMANT)
    if given_back and worker is not None:
        worker.release(given_back)


def ended(db_session: Session) -> None:
    """The session's transaction ended: unless its commit sent them, what it claimed is not
    sent by this process and every sender it held is given back."""
    db_session.info.pop(CLAIMED, None)
    held: list[Held] = db_session.info.pop(HELD, [])
    worker: Worker | None = db_session.info.get(CLAIMANT)
    if held and worker is not None:
        worker.release([(key, reservation) for _, key, reservation in held])


def _undone(transaction: SessionTransaction) -> SessionTransaction | None:
    """The SAVEPOINT a rollback of `transaction` undid, or None: the whole transaction.

    A flush's failure rolls back an inner marker of SQLAlchemy's own, and with it
    the database's work up to the nearest SAVEPOINT or the transaction itself.
    """
    undone: SessionTransaction | None = transaction
    while undone is not None and not undone.nested:
        undone = undone.parent
    return undone


def _within(taken_in: Savepoint, savepoint: SessionTransaction) -> bool:
    """Whether what was taken in `taken_in` was taken in `savepoint` or in one inside it."""
    transaction = taken_in
    while transaction is not None:
        if transaction is savepoint:
            return True
        transaction = transaction.parent
    return False
