"""A view submitted once acts once: submissions claimed by their view id in the database.

Slack gives a modal one view id for its life; a double click on Submit sends
the same view twice, possibly to two instances at once. The first claims the
id; a refused submission frees it again, so the person can correct the form
and submit the same view anew.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.inbound import service

SLACK_VIEW = "slack.view"  # a modal's view id, claimed by its submission
# Long enough for the slowest submission's work; a claim left by a dead
# instance is taken over after it.
LEASE_S = 300.0


class SubmittedViews:
    def __init__(self, *, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def claim(self, view_id: str) -> bool:
        """True for the submission that acts; False while another holds it or after it acted."""
        with self.sessions() as db_session:
            claimed = service.claim(
                db_session, source=SLACK_VIEW, key=view_id, now=self.clock.now(), lease_s=LEASE_S
            )
            db_session.commit()
            return claimed

    def acted(self, view_id: str) -> None:
        with self.sessions() as db_session:
            service.complete(db_session, source=SLACK_VIEW, key=view_id)
            db_session.commit()

    def release(self, view_id: str) -> None:
        """Nothing was done: the view may be submitted again."""
        with self.sessions() as db_session:
            service.release(db_session, source=SLACK_VIEW, key=view_id)
            db_session.commit()
