"""A delivery claimed by the worker: the sender is told which attempt it makes, and the row says so."""

from __future__ import annotations

import sqlalchemy as sa

from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import SENT, SLACK_RESPONSE, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Retry, Sent
from bot.outbox.worker import OutboxWorker
from tests.support import wait_for


def test_each_claim_hands_the_sender_its_attempt_and_the_row_keeps_the_count(
    engine: sa.Engine,
) -> None:
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        outbox.respond(
            db_session,
            response_url="https://hooks.slack.test/commands/1",
            body={"text": "done"},
            order_key="respond:1",
            now=SystemClock().now(),
        )
        db_session.commit()
    attempts: list[int] = []

    def refused_twice(job: Job) -> Result:
        attempts.append(job.attempts)
        return Retry(error="not yet", after_s=0.0) if len(attempts) < 3 else Sent()

    worker = OutboxWorker(
        sessions=sessions,
        senders={SLACK_RESPONSE: refused_twice},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=DeliverySettings(),
        metrics=Metrics(),
    )
    worker.start()
    try:
        wait_for(lambda: _row(engine)[0] == SENT)
    finally:
        worker.stop()

    assert attempts == [1, 2, 3]
    assert _row(engine) == (SENT, 3, 3, None)


def _row(engine: sa.Engine) -> tuple[str, int, int, str | None]:
    with engine.connect() as connection:
        status, tries, version, claimed_by = connection.execute(
            sa.select(Delivery.status, Delivery.attempts, Delivery.version, Delivery.claimed_by)
        ).one()
    return status, tries, version, claimed_by
