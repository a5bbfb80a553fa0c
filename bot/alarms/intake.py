"""Recording inbound messages in their own transaction, safe against concurrent redelivery."""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.alarms.service import Inbound, is_duplicate, receive
from bot.clock import Clock
from bot.config import Config

log = logging.getLogger(__name__)
ATTEMPTS = 3


class AlarmIntake:
    def __init__(self, *, sessions: sessionmaker[Session], config: Config, clock: Clock) -> None:
        self.sessions = sessions
        self.config = config
        self.clock = clock

    def record(self, inbound: Inbound) -> str:
        """Durably record one message and everything it causes; return the outcome."""
        for attempt in range(1, ATTEMPTS + 1):
            with self.sessions() as db_session:
                try:
                    outcome = receive(
                        db_session, inbound=inbound, config=self.config, now=self.clock.now()
                    )
                    db_session.commit()
                except IntegrityError:
                    # Either the same MessageId raced us (a redelivery), or another
                    # message opened this alarm's incident first: look and go again.
                    db_session.rollback()
                    if self._seen(inbound.message_id):
                        return "duplicate"
                    if attempt == ATTEMPTS:
                        raise
                    continue
                except OperationalError as exc:
                    db_session.rollback()
                    # PostgreSQL deadlock or serialization failure: retry; else re-raise.
                    code = getattr(exc.orig, "sqlstate", None)
                    if code not in {"40001", "40P01"} or attempt == ATTEMPTS:
                        raise
                    continue
            log.info("message %s via %s: %s", inbound.message_id, inbound.via, outcome)
            return outcome
        raise AssertionError("unreachable")

    def warm_up(self) -> None:
        """Run the intake's statements once, in a transaction that is rolled back.

        The first alarm after a start otherwise pays for compiling them (the first
        record took 30 ms instead of 10 on PostgreSQL). An OK with no incident and
        a plain notice touch no incident, so no incident number is used up.
        """
        now = self.clock.now()
        name = f"opsbot-warm-up-{uuid.uuid4().hex}"
        ok = {"AlarmName": name, "NewStateValue": "OK", "OldStateValue": "ALARM"}
        with self.sessions() as db_session:
            for body in (json.dumps(ok), "warm-up"):
                inbound = Inbound(message_id=f"{name}:{len(body)}", via="warm-up", body=body)
                receive(db_session, inbound=inbound, config=self.config, now=now)
            db_session.flush()
            db_session.rollback()

    def _seen(self, message_id: str) -> bool:
        with self.sessions() as db_session:
            return is_duplicate(db_session, message_id=message_id)
