"""Deliveries claimed by the worker: all that a pass may send in one statement, each
only as it was read, and the sender told which attempt it makes."""

from __future__ import annotations

import threading
from typing import Any

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


def _answers_due(engine: sa.Engine, count: int) -> list[int]:
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        for n in range(count):
            outbox.respond(
                db_session,
                response_url=f"https://hooks.slack.test/commands/{n}",
                body={"text": f"answer {n}"},
                order_key=f"respond:{n}",
                now=SystemClock().now(),
            )
        db_session.commit()
        return list(db_session.scalars(sa.select(Delivery.id).order_by(Delivery.id)))


def _worker(engine: sa.Engine, sender: Any) -> OutboxWorker:
    return OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: sender},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=DeliverySettings(),
        metrics=Metrics(),
    )


def _run_until(engine: sa.Engine, sender: Any, done: Any, *, watching: Any) -> None:
    """Run a worker with `sender` until `done()`, `watching` every statement sent."""
    sa.event.listen(engine, "before_cursor_execute", watching)
    worker = _worker(engine, sender)
    worker.start()
    try:
        wait_for(done)
    finally:
        worker.stop()
        sa.event.remove(engine, "before_cursor_execute", watching)


def _is_claim(statement: str) -> bool:
    return statement.lstrip().upper().startswith("UPDATE DELIVERIES") and "attempts" in statement


def test_what_one_pass_may_send_is_claimed_in_one_statement(engine: sa.Engine) -> None:
    ids = _answers_due(engine, 5)
    claims: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _is_claim(statement):
            claims.append(statement)

    sent: list[int] = []
    lock = threading.Lock()

    def sender(job: Job) -> Result:
        with lock:
            sent.append(job.id)
        return Sent()

    _run_until(engine, sender, lambda: len(sent) == 5, watching=count)

    assert sorted(sent) == ids
    assert len(claims) == 1


def test_a_row_changed_after_it_was_read_is_sent_as_it_is_now(engine: sa.Engine) -> None:
    first, *_ = _answers_due(engine, 3)
    changed = {"response_url": "https://hooks.slack.test/commands/0", "body": {"text": "changed"}}
    fired: list[bool] = []

    def change_first_before_the_claim(
        connection: sa.Connection, _cursor: Any, statement: str, *_args: Any
    ) -> None:
        # Between the worker's read and its claim, as a fold into the row would.
        if _is_claim(statement) and not fired:
            fired.append(True)
            connection.execute(
                sa.update(Delivery)
                .where(Delivery.id == first)
                .values(version=Delivery.version + 1, payload=changed)
            )

    bodies: dict[int, list[str]] = {}
    lock = threading.Lock()

    def sender(job: Job) -> Result:
        with lock:
            bodies.setdefault(job.id, []).append(job.payload["body"]["text"])
        return Sent()

    _run_until(engine, sender, lambda: len(bodies) == 3, watching=change_first_before_the_claim)

    assert bodies[first] == ["changed"]
    assert sorted(len(texts) for texts in bodies.values()) == [1, 1, 1]
    with engine.connect() as connection:
        tries = dict(connection.execute(sa.select(Delivery.id, Delivery.attempts)).all())
    assert set(tries.values()) == {1}


def test_a_pass_claims_no_more_than_its_free_senders_start(engine: sa.Engine) -> None:
    # A row claimed beyond them would wait in the pool while its lease runs out,
    # and another instance would send it too.
    ids = _answers_due(engine, 4)
    release = threading.Event()
    sent: list[int] = []
    lock = threading.Lock()

    def held(job: Job) -> Result:
        with lock:
            sent.append(job.id)
        release.wait(timeout=30)
        return Sent()

    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: held},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=DeliverySettings(workers=2),
        metrics=Metrics(),
    )
    worker.start()
    try:
        wait_for(lambda: len(sent) == 2)
        with engine.connect() as connection:
            claimed = connection.scalar(
                sa.select(sa.func.count()).where(Delivery.claimed_by.is_not(None))
            )
        assert claimed == 2
        release.set()
        wait_for(lambda: len(sent) == 4)
    finally:
        release.set()
        worker.stop()
    assert sorted(sent) == ids


def _row(engine: sa.Engine) -> tuple[str, int, int, str | None]:
    with engine.connect() as connection:
        status, tries, version, claimed_by = connection.execute(
            sa.select(Delivery.status, Delivery.attempts, Delivery.version, Delivery.claimed_by)
        ).one()
    return status, tries, version, claimed_by
