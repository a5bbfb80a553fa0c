"""Waking the worker right after a commit that added deliveries."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox.service import WAKE_FLAG


def wake_after_commit(sessions: sessionmaker[Session], wake: Callable[[], None]) -> None:
    """Call `wake` after any commit of a session from `sessions` that enqueued something."""

    def after_commit(db_session: Session) -> None:
        if db_session.info.pop(WAKE_FLAG, False):
            wake()

    def after_rollback(db_session: Session) -> None:
        db_session.info.pop(WAKE_FLAG, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", lambda s, _tx: after_rollback(s))
