"""A view submitted once acts once: submissions claimed by their view id in the database.

Slack gives a modal one view id for its life; a double click on Submit sends
the same view twice, possibly to two instances at once. The first claims the
id; a refused submission frees it again, so the person can correct the form
and submit the same view anew. A submission whose work failed part-way is
never acted on again: part of it may have been done.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.db.statements import update_rows
from bot.inbound import service
from bot.inbound.models import DONE, InboundReceipt

SLACK_VIEW = "slack.view"  # a modal's view id, claimed by its submission
# Long enough for the slowest submission's work; a claim left by a dead
# instance is taken over after it.
LEASE_S = 300.0
# The receipt's status of a view whose work failed part-way: a claim takes over
# only a receipt still processing, so this one is never acted on again.
UNSURE_STATUS = "unsure"

# What a submission's claim found: it acts; the view acted before; another submission
# of it is being worked on (on this instance or another); its work failed part-way.
Claim = Literal["claimed", "acted", "busy", "unsure"]


class SubmittedViews:
    def __init__(self, *, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def claim(self, view_id: str) -> Claim:
        """What the claim found: `claimed` for the submission that acts, else the view's state."""
        with self.sessions() as db_session:
            claimed = service.claim(
                db_session, source=SLACK_VIEW, key=view_id, now=self.clock.now(), lease_s=LEASE_S
            )
            status = None
            if not claimed:
                status = db_session.scalar(
                    select(InboundReceipt.status).where(
                        InboundReceipt.source == SLACK_VIEW, InboundReceipt.key == view_id
                    )
                )
            db_session.commit()
        if claimed:
            return "claimed"
        if status == DONE:
            return "acted"
        return "unsure" if status == UNSURE_STATUS else "busy"

    def acted(self, view_id: str) -> None:
        with self.sessions() as db_session:
            service.complete(db_session, source=SLACK_VIEW, key=view_id)
            db_session.commit()

    def release(self, view_id: str) -> None:
        """Nothing was done: the view may be submitted again."""
        with self.sessions() as db_session:
            service.release(db_session, source=SLACK_VIEW, key=view_id)
            db_session.commit()

    def unsure(self, view_id: str) -> None:
        """Its work failed part-way: the view is never acted on again (a new form is)."""
        with self.sessions() as db_session:
            update_rows(
                db_session,
                update(InboundReceipt)
                .where(InboundReceipt.source == SLACK_VIEW, InboundReceipt.key == view_id)
                .values(status=UNSURE_STATUS, lease_until=None),
            )
            db_session.commit()
