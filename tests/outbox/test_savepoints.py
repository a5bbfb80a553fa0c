"""Claims at once and wake-ups in a transaction that uses SAVEPOINTs.

A SAVEPOINT rolled back takes only what was done in it: the claims made before
it are still sent right after the commit, and the worker is still woken. One
released commits nothing yet: what it claimed leaves at the transaction's commit.
"""

from __future__ import annotations

import threading

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import ManualClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import express
from bot.outbox import service as outbox
from bot.outbox.models import SENT, SLACK_RESPONSE, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Sent
from bot.outbox.wake import wake_after_commit
from bot.outbox.worker import OutboxWorker
from tests.support import wait_for

# The clock moves only when told: a claim the commit does not hand over is not
# sent until the test ends, rather than when its lease runs out.
SETTINGS = DeliverySettings(lease_s=30.0, request_timeout_s=2.0, poll_interval_s=0.05, workers=1)


class Clash(Exception):
    """What a caller handles by rolling its SAVEPOINT back (a row taken meanwhile, say)."""


def _answer(db_session: Session, n: int, clock: ManualClock) -> None:
    outbox.respond(
        db_session,
        response_url=f"https://hooks.slack.test/commands/{n}",
        body={"text": f"answer {n}"},
        order_key=f"respond:{n}",
        now=clock.now(),
    )


def _rolled_back_savepoint(db_session: Session, work: list[int], clock: ManualClock) -> None:
    try:
        with db_session.begin_nested():
            for n in work:
                _answer(db_session, n, clock)
            db_session.flush()
            raise Clash()
    except Clash:
        pass


def _started(engine: sa.Engine, sent: list[int]) -> tuple[OutboxWorker, sessionmaker[Session]]:
    def send(job: Job) -> Result:
        sent.append(job.id)
        return Sent()

    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=SETTINGS,
        clock=ManualClock(),
        instance_id="A",
        metrics=Metrics(),
    )
    sessions = make_sessionmaker(engine)
    express.send_at_once(sessions, worker)
    wake_after_commit(sessions, worker.wake)
    worker.start()
    return worker, sessions


def _statuses(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    with make_sessionmaker(engine)() as db_session:
        query = sa.select(Delivery.order_key, Delivery.status, Delivery.claimed_by)
        rows = db_session.execute(query.order_by(Delivery.id))
        return [(order_key, status, by) for order_key, status, by in rows]


def test_a_savepoint_rolled_back_keeps_the_claims_made_before_it(engine: sa.Engine) -> None:
    clock = ManualClock()
    sent: list[int] = []
    worker, sessions = _started(engine, sent)
    try:
        with sessions() as db_session:
            _answer(db_session, 1, clock)  # claimed at once
            _rolled_back_savepoint(db_session, [], clock)
            db_session.commit()
        wait_for(lambda: _statuses(engine) == [("respond:1", SENT, None)])
    finally:
        worker.stop()
    assert sent == [1]


def test_what_a_savepoint_rolled_back_claimed_is_not_sent_and_its_sender_is_free(
    engine: sa.Engine,
) -> None:
    clock = ManualClock()
    sent: list[int] = []
    worker, sessions = _started(engine, sent)
    try:
        with sessions() as db_session:
            _rolled_back_savepoint(db_session, [1], clock)  # its row is gone
            _answer(db_session, 2, clock)  # the one sender is free for this one
            db_session.flush()
            claims = db_session.execute(sa.select(Delivery.order_key, Delivery.claimed_by))
            assert list(claims) == [("respond:2", "A")]
            db_session.commit()
        wait_for(lambda: _statuses(engine) == [("respond:2", SENT, None)])
        wait_for(lambda: not worker._in_flight)
    finally:
        worker.stop()
    assert len(sent) == 1


def test_a_savepoint_released_hands_its_claims_over_at_the_commit_only(
    engine: sa.Engine,
) -> None:
    clock = ManualClock()
    sent: list[int] = []
    worker, sessions = _started(engine, sent)
    try:
        with sessions() as db_session:
            with db_session.begin_nested():
                _answer(db_session, 1, clock)  # claimed at once
            # Not committed yet: sent now, its record would find no row (and the row,
            # committed later still claimed, would wait out its lease).
            assert not worker._in_flight
            db_session.commit()
        wait_for(lambda: _statuses(engine) == [("respond:1", SENT, None)])
    finally:
        worker.stop()
    assert sent == [1]


def test_the_commit_wakes_the_worker_whatever_its_savepoints_did(engine: sa.Engine) -> None:
    clock = ManualClock()
    woken = threading.Event()
    sessions = make_sessionmaker(engine)  # no claimant: what is added waits for the worker
    wake_after_commit(sessions, woken.set)
    with sessions() as db_session:
        _answer(db_session, 1, clock)
        _rolled_back_savepoint(db_session, [2], clock)
        db_session.commit()
    assert woken.is_set()

    woken.clear()
    with sessions() as db_session:
        with db_session.begin_nested():
            _answer(db_session, 3, clock)
        assert not woken.is_set()  # nothing committed yet: the worker would find nothing
        db_session.commit()
    assert woken.is_set()
