"""Right after a commit that added deliveries: wake the worker, send what it claimed."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox import express
from bot.outbox.service import WAKE_FLAG


def wake_after_commit(sessions: sessionmaker[Session], wake: Callable[[], None]) -> None:
    """Call `wake` after any commit of a session from `sessions` that enqueued something,
    and hand what the commit claimed for sending at once to its claimant."""

    def after_commit(db_session: Session) -> None:
        claimed = express.take_claimed(db_session)
        claimant = express.claimant_of(db_session)
        if claimed and claimant is not None:
            claimant.send_claimed(claimed)
        if db_session.info.pop(WAKE_FLAG, False):
            wake()

    def after_rollback(db_session: Session) -> None:
        express.take_claimed(db_session)
        db_session.info.pop(WAKE_FLAG, None)

    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", lambda s, _tx: after_rollback(s))
