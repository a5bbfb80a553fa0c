"""What a transaction hands on only once it commits: a metric counts what was written,
never what a rollback undid.

A flow notes an item under a key (`note`); the composition root wires each key's
handler to a sessionmaker once (`on_commit`); a commit hands every item noted in its
transaction to its key's handler, a rollback drops them. A SAVEPOINT commits nothing
yet: its release hands nothing on (SQLAlchemy fires `after_commit` for it too), and its
rollback drops only what was noted inside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger(__name__)

Handler = Callable[[Any], None]

# Each sessionmaker's handlers by key, and one pair of listeners for all of them.
_HANDLERS: WeakKeyDictionary[sessionmaker[Session], dict[str, Handler]] = WeakKeyDictionary()


def note(db_session: Session, key: str, item: object) -> None:
    """Keep `item` for `key`'s handler until this session's transaction ends."""
    # Kept with the innermost SAVEPOINT open now (None: the transaction itself).
    db_session.info.setdefault(key, []).append((db_session.get_nested_transaction(), item))


def on_commit(sessions: sessionmaker[Session], key: str, handler: Handler) -> None:
    """Hand each item noted under `key` to `handler` once its transaction commits.

    Wiring a key again replaces its handler, so a key is handled once per commit.
    """
    handlers = _HANDLERS.get(sessions)
    if handlers is None:
        handlers = _HANDLERS[sessions] = {}
        _listen(sessions, handlers)
    handlers[key] = handler


def now(sessions: sessionmaker[Session], key: str, item: object) -> None:
    """Hand `item` to `key`'s handler at once: what happened though nothing could be
    committed of it (its audit line failed) still counts."""
    handler = _HANDLERS.get(sessions, {}).get(key)
    if handler is not None:
        handler(item)


def _listen(sessions: sessionmaker[Session], handlers: dict[str, Handler]) -> None:
    @event.listens_for(sessions, "after_commit")
    def after_commit(db_session: Session) -> None:
        if db_session.get_nested_transaction() is not None:
            return  # a SAVEPOINT released: its items wait for the transaction's commit
        for key, handler in list(handlers.items()):
            for _savepoint, item in db_session.info.pop(key, ()):
                try:
                    handler(item)
                except Exception:  # the commit stands: one handler's fault stops no other
                    log.exception("after commit: the handler of %s failed", key)

    @event.listens_for(sessions, "after_soft_rollback")
    def after_soft_rollback(db_session: Session, transaction: SessionTransaction) -> None:
        if transaction.nested:
            for key in list(handlers):
                kept = [
                    noted
                    for noted in db_session.info.get(key, ())
                    if not _inside(noted[0], transaction)
                ]
                db_session.info[key] = kept
        elif transaction.parent is None:
            for key in list(handlers):
                db_session.info.pop(key, None)

    @event.listens_for(sessions, "after_transaction_end")
    def after_transaction_end(db_session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:  # ended without a commit or a rollback (a close)
            for key in list(handlers):
                db_session.info.pop(key, None)


def _inside(savepoint: SessionTransaction | None, rolled_back: SessionTransaction) -> bool:
    """Whether an item noted under `savepoint` was inside the SAVEPOINT `rolled_back`."""
    while savepoint is not None:
        if savepoint is rolled_back:
            return True
        savepoint = savepoint.parent
    return False
