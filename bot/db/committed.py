"""What a transaction hands on only once it commits: a metric counts what was written,
never what a rollback undid.

A flow notes an item under a key (`note`); the composition root wires each key's
handler to a sessionmaker once (`on_commit`); a commit hands every item noted in its
transaction to its key's handler, a rollback drops them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

Handler = Callable[[Any], None]

# Each sessionmaker's handlers by key, and one pair of listeners for all of them.
_HANDLERS: WeakKeyDictionary[sessionmaker[Session], dict[str, Handler]] = WeakKeyDictionary()


def note(db_session: Session, key: str, item: object) -> None:
    """Keep `item` for `key`'s handler until this session's transaction ends."""
    db_session.info.setdefault(key, []).append(item)


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
        for key, handler in list(handlers.items()):
            for item in db_session.info.pop(key, ()):
                handler(item)

    @event.listens_for(sessions, "after_rollback")
    def after_rollback(db_session: Session) -> None:
        for key in list(handlers):
            db_session.info.pop(key, None)
