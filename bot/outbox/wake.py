"""Right after a commit that added deliveries: wake the worker, send what it claimed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from bot.outbox import express
from bot.outbox.service import WAKE_FLAG


def wake_after_commit(sessions: sessionmaker[Session], wake: Callable[[], None]) -> None:
    """Call `wake` after any commit of a session from `sessions` that enqueued something,
    and hand what the commit claimed for sending at once to its claimant.

    Only the commit of the transaction itself counts: a SAVEPOINT released commits
    nothing yet, and one rolled back takes only what was done in it.
    """

    def after_commit(db_session: Session) -> None:
        if db_session.get_nested_transaction() is not None:
            return  # a SAVEPOINT released: its work waits for the transaction's commit
        express.committed(db_session)
        if db_session.info.pop(WAKE_FLAG, False):
            wake()

    def after_soft_rollback(db_session: Session, transaction: SessionTransaction) -> None:
        express.rolled_back(db_session, transaction)

    def after_transaction_end(db_session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # the transaction itself, committed or not
            express.ended(db_session)
            db_session.info.pop(WAKE_FLAG, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", after_soft_rollback)
    event.listen(sessions, "after_transaction_end", after_transaction_end)
