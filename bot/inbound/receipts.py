"""Slack Events API deliveries, deduplicated by event_id in the database.

Slack retries a delivery (`X-Slack-Retry-Num`) when it got no 2xx within
three seconds, possibly while the first attempt is still at work. A retry is
not dropped blindly: it is a duplicate while the first attempt holds its
lease or has finished, and is processed when that attempt died or failed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from sqlalchemy.orm import Session, sessionmaker

from bot.clock import Clock
from bot.inbound import service
from bot.inbound.models import SLACK_EVENT

log = logging.getLogger(__name__)

# Slack retries at once, after a minute and after five: a minute's lease covers
# the slow first attempt without blocking the retry that follows a crash.
LEASE_S = 50.0


class SlackEventReceipts:
    def __init__(self, *, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def claim(self, event_id: str) -> bool:
        """True when this delivery should be processed; False for a duplicate."""
        with self.sessions() as db_session:
            claimed = service.claim(
                db_session, source=SLACK_EVENT, key=event_id, now=self.clock.now(), lease_s=LEASE_S
            )
            db_session.commit()
            return claimed

    @contextlib.contextmanager
    def processing(self, event_id: str) -> Iterator[None]:
        """Mark the event done when the block ends, or free it for a retry when it raises."""
        if not event_id:
            yield
            return
        try:
            yield
        except Exception:
            with self.sessions() as db_session:
                service.release(db_session, source=SLACK_EVENT, key=event_id)
                db_session.commit()
            log.exception("event %r failed; Slack's next retry will process it", event_id)
            raise
        with self.sessions() as db_session:
            service.complete(db_session, source=SLACK_EVENT, key=event_id)
            db_session.commit()
