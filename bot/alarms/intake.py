"""Recording inbound messages, a batch to a transaction, safe against concurrent redelivery.

`record_batch` records the notifications that arrived together (bot/alarms/batch.py
gathers them) in one transaction: all of them are durable, or none is and each
is told so (SNS and SQS deliver them again). A failure that is not the
database's or its connection's (one notification the database or this code
refuses) is not held against the rest: the batch is then recorded one
notification at a time, so only that one fails.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import uuid
from concurrent.futures import Future

from sqlalchemy import event
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.alarms.batch import GroupCommit, Outcome
from bot.alarms.routing import route_for
from bot.alarms.service import Inbound, receive
from bot.clock import Clock
from bot.config import AlarmMatch, Config
from bot.incidents.models import Incident
from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)
ATTEMPTS = 3


def _negative_incident_ids(db_session: Session, _context: object, _instances: object) -> None:
    for instance in db_session.new:
        if isinstance(instance, Incident) and instance.id is None:
            instance.id = -secrets.randbelow(2**30) - 1


class AlarmIntake:
    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        config: Config,
        clock: Clock,
        metrics: Metrics | None = None,
    ) -> None:
        self.sessions = sessions
        self.config = config
        self.clock = clock
        self.metrics = metrics or Metrics()
        self._lock = threading.Lock()
        self._group: GroupCommit | None = None

    def start(self) -> None:
        """Start the batches' writer (bot/alarms/batch.py) before the first notification."""
        self._batches().start()

    def submit(self, inbound: Inbound) -> Future[str]:
        """Record `inbound` with whatever arrives with it; the future resolves once committed."""
        return self._batches().submit(inbound)

    def waiting(self) -> int:
        """Notifications waiting for the next batch (tests, and the curious)."""
        return self._batches().waiting()

    def _batches(self) -> GroupCommit:
        with self._lock:
            if self._group is None:
                self._group = GroupCommit(self.record_batch)
            return self._group

    def stop(self) -> None:
        """Record the notifications already queued; refuse any after (they get a 5xx)."""
        self._batches().stop()

    def record(self, inbound: Inbound) -> str:
        """Durably record one message and everything it causes; return the outcome."""
        [outcome] = self.record_batch([inbound])
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def record_batch(self, inbounds: list[Inbound]) -> list[Outcome]:
        """Record `inbounds` in one transaction; each one's outcome, or the exception
        that kept it from being recorded (then nothing of it was committed)."""
        if not inbounds:
            return []
        via = inbounds[0].via
        started = time.perf_counter()
        outcomes: list[Outcome]
        try:
            outcomes = list(self._record(inbounds))
        except (OperationalError, InterfaceError) as exc:
            # The database or the connection to it: nothing of the batch was committed,
            # and none would be alone.
            outcomes = [exc] * len(inbounds)
        except Exception as exc:
            # One notification the database or this code refuses (a NUL in its text
            # on PostgreSQL, a bug): nothing of the batch was committed; alone, the
            # others are.
            if len(inbounds) == 1:
                outcomes = [exc]
            else:
                log.exception(
                    "a batch of %d notifications failed; recording them one by one",
                    len(inbounds),
                )
                outcomes = [self.record_batch([inbound])[0] for inbound in inbounds]
                # Counted in the calls above.
                return outcomes
        self.metrics.intake_batch_size.labels(via).observe(len(inbounds))
        self.metrics.intake_commit.labels(via).observe(time.perf_counter() - started)
        for inbound, outcome in zip(inbounds, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                counted = "error"
            else:
                counted = "duplicate" if outcome == "duplicate" else "new"
            self.metrics.notifications.labels(inbound.via, counted).inc()
        return outcomes

    def _record(self, inbounds: list[Inbound]) -> list[str]:
        for attempt in range(1, ATTEMPTS + 1):
            with self.sessions() as db_session:
                try:
                    outcomes = [
                        receive(
                            db_session, inbound=inbound, config=self.config, now=self.clock.now()
                        )
                        for inbound in inbounds
                    ]
                    db_session.commit()
                except IntegrityError:
                    # Another transaction opened one of these alarms' incidents first:
                    # go again. (A redelivery of the same MessageId is not an error:
                    # receive answers "duplicate".)
                    db_session.rollback()
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
            for inbound, outcome in zip(inbounds, outcomes, strict=True):
                log.info(
                    "message %r via %s: %s",
                    inbound.message_id,
                    inbound.via,
                    outcome,
                    extra={
                        "message_id": inbound.message_id,
                        "via": inbound.via,
                        "batch": len(inbounds),
                    },
                )
            return outcomes
        raise AssertionError("unreachable")

    def warm_up(self) -> None:
        """Run the intake's statements once, in a transaction that is rolled back.

        The first alarm after a start otherwise pays for compiling them and for
        the ORM's and the database connection's first use of each table: on
        PostgreSQL the first page's record took about 20 ms instead of 10 with an
        OK and a notice as the warm-up, and 10 with an alarm that opens and pages
        an incident as well. That incident takes a negative id, so that no incident
        number is used up (PostgreSQL sequences do not roll back).
        """
        now = self.clock.now()
        name = f"opsbot-warm-up-{uuid.uuid4().hex}"
        alarm = {"AlarmName": name, "NewStateValue": "ALARM", "OldStateValue": "OK"}
        ok = {**alarm, "NewStateValue": "OK", "OldStateValue": "ALARM"}
        # Routed as the first route that pages would route it, whatever its name.
        route = next(
            (r for r in self.config.alarm_routes if r.pagerduty_routing_key_env),
            self.config.alarm_routes[-1],
        )
        paging = self.config.model_copy(
            update={"alarm_routes": [route.model_copy(update={"match": AlarmMatch()})]}
        )
        # The real routes' patterns are compiled (and cached by fnmatch) here too.
        route_for(self.config.alarm_routes, alarm_name=name, account="", region="")
        with self.sessions() as db_session:
            event.listen(db_session, "before_flush", _negative_incident_ids)
            for body, config in (
                (json.dumps(alarm), paging),
                (json.dumps(ok), self.config),
                ("warm-up", self.config),
            ):
                inbound = Inbound(message_id=f"{name}:{len(body)}", via="warm-up", body=body)
                receive(db_session, inbound=inbound, config=config, now=now)
            db_session.flush()
            db_session.rollback()
