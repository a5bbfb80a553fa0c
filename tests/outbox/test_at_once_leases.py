"""A claim is sent only by the instance whose lease on it is running.

Transactions side by side claim at once no more than the worker's free senders
(and a pass of the worker counts the senders they hold), a claim whose lease
ended before a sender took it up is not sent, and a send slower than its lease
keeps its claim.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import ManualClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import express
from bot.outbox import service as outbox
from bot.outbox.models import PENDING, SENT, SLACK_RESPONSE, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Sent
from bot.outbox.wake import wake_after_commit
from bot.outbox.worker import OutboxWorker
from tests.support import statements_sent, wait_for

# The tests' clock moves only when told; a long lease keeps a slow machine's real
# seconds (after which a sender held for a claim is let go) out of the way.
SETTINGS = DeliverySettings(lease_s=30.0, request_timeout_s=2.0, poll_interval_s=0.05, workers=1)


def _worker(engine: sa.Engine, instance_id: str, send: Any, clock: ManualClock) -> OutboxWorker:
    return OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_RESPONSE: send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=SETTINGS,
        clock=clock,
        instance_id=instance_id,
        metrics=Metrics(),
    )


def _at_once_for(engine: sa.Engine, worker: OutboxWorker) -> sessionmaker[Session]:
    """Sessions whose transactions claim at once for `worker`, as the service's do."""
    sessions = make_sessionmaker(engine)
    express.send_at_once(sessions, worker)
    wake_after_commit(sessions, worker.wake)
    return sessions


def _answer(db_session: Session, n: int, clock: ManualClock) -> None:
    outbox.respond(
        db_session,
        response_url=f"https://hooks.slack.test/commands/{n}",
        body={"text": f"answer {n}"},
        order_key=f"respond:{n}",
        now=clock.now(),
    )


def _rows(engine: sa.Engine) -> list[tuple[int, str, str | None]]:
    with make_sessionmaker(engine)() as db_session:
        query = sa.select(Delivery.id, Delivery.status, Delivery.claimed_by).order_by(Delivery.id)
        return [(i, status, by) for i, status, by in db_session.execute(query)]


def _skip_on_sqlite(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")


def test_transactions_side_by_side_claim_at_once_no_more_than_the_free_senders(
    engine: sa.Engine,
) -> None:
    _skip_on_sqlite(engine)
    clock = ManualClock()
    answered = threading.Event()
    sent: list[int] = []

    def slow(job: Job) -> Result:
        sent.append(job.id)
        answered.wait(30)
        return Sent()

    worker = _worker(engine, "A", slow, clock)
    sessions = _at_once_for(engine, worker)
    worker.start()
    try:
        first, second = sessions(), sessions()
        try:
            _answer(first, 1, clock)
            _answer(second, 2, clock)
            first.flush()
            second.flush()
            # One sender: the first transaction's claim holds it, though neither has
            # committed; the second answer is the worker's, to claim once it is free.
            claims = [d.claimed_by for d in first.scalars(sa.select(Delivery))]
            claims += [d.claimed_by for d in second.scalars(sa.select(Delivery))]
            assert claims == ["A", None]
            first.commit()
            second.commit()
        finally:
            first.close()
            second.close()
        wait_for(lambda: sent == [1])
        assert _rows(engine) == [(1, PENDING, "A"), (2, PENDING, None)]
        answered.set()
        wait_for(lambda: _rows(engine) == [(1, SENT, None), (2, SENT, None)])
    finally:
        answered.set()
        worker.stop()
    assert sent == [1, 2]


def test_a_pass_counts_the_sender_held_by_a_transaction_not_yet_committed(
    engine: sa.Engine,
) -> None:
    _skip_on_sqlite(engine)
    clock = ManualClock()
    sent: list[int] = []

    def send(job: Job) -> Result:
        sent.append(job.id)
        return Sent()

    worker = _worker(engine, "A", send, clock)
    sessions = _at_once_for(engine, worker)
    worker.start()
    try:
        clicking = sessions()
        try:
            _answer(clicking, 1, clock)
            clicking.flush()  # claimed at once, its transaction still running
            with make_sessionmaker(engine)() as elsewhere:  # the worker's to claim
                _answer(elsewhere, 2, clock)
                elsewhere.commit()
            worker.dispatch_due()  # a pass, as the worker's loop makes them
            # Its one sender is the click's: claimed now, the answer would wait for it
            # while its lease ran.
            assert _rows(engine) == [(2, PENDING, None)]
            clicking.commit()
        finally:
            clicking.close()
        wait_for(lambda: _rows(engine) == [(1, SENT, None), (2, SENT, None)])
    finally:
        worker.stop()
    assert sorted(sent) == [1, 2]


def test_a_claim_at_once_during_a_pass_counts_the_senders_the_pass_chose(
    engine: sa.Engine,
) -> None:
    _skip_on_sqlite(engine)
    clock = ManualClock()
    with make_sessionmaker(engine)() as db_session:  # the worker's to claim
        _answer(db_session, 1, clock)
        db_session.commit()
    answered = threading.Event()
    sent: list[int] = []

    def slow(job: Job) -> Result:
        sent.append(job.id)
        answered.wait(30)
        return Sent()

    worker = _worker(engine, "A", slow, clock)
    sessions = _at_once_for(engine, worker)
    clicked = threading.Event()
    claimed_at_once: list[str | None] = []

    def click_meanwhile(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # In the worker's thread, between the pass's choice of the first answer and the
        # commit of its claim (which bumps `attempts`): a click's transaction answers at
        # once if it may.
        if not statement.startswith("UPDATE deliveries SET attempts=") or clicked.is_set():
            return
        clicked.set()
        with sessions() as db_session:
            _answer(db_session, 2, clock)
            db_session.flush()
            query = sa.select(Delivery.claimed_by).where(Delivery.order_key == "respond:2")
            claimed_at_once.extend(db_session.scalars(query))
            db_session.commit()

    sa.event.listen(engine, "after_cursor_execute", click_meanwhile)
    try:
        worker.start()
        wait_for(lambda: sent)
        # The pass took the one sender for the first answer: the click's waits for it.
        assert claimed_at_once == [None]
        assert sent == [1]
        answered.set()
        wait_for(lambda: _rows(engine) == [(1, SENT, None), (2, SENT, None)])
    finally:
        sa.event.remove(engine, "after_cursor_execute", click_meanwhile)
        answered.set()
        worker.stop()
    assert sent == [1, 2]


def test_a_send_right_after_its_claim_asks_the_database_nothing_more(engine: sa.Engine) -> None:
    clock = ManualClock()
    worker = _worker(engine, "A", lambda job: Sent(), clock)
    sessions = _at_once_for(engine, worker)
    worker.start()
    try:
        with statements_sent(engine) as sent, sessions() as db_session:
            _answer(db_session, 1, clock)
            db_session.commit()
            wait_for(lambda: _rows(engine) == [(1, SENT, None)])
    finally:
        worker.stop()
    # Its lease, taken moments ago, is known to be running: no renewal before the send,
    # only the record of its outcome.
    [update] = [statement for statement, _ in sent if statement.startswith("UPDATE DELIVERIES")]
    assert update.startswith("UPDATE DELIVERIES SET STATUS=")


def test_a_claim_whose_lease_ended_before_a_sender_took_it_up_is_not_sent(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    sent: list[tuple[str, int]] = []

    def sender(instance_id: str) -> Any:
        def send(job: Job) -> Result:
            sent.append((instance_id, job.id))
            return Sent()

        return send

    first = _worker(engine, "A", sender("A"), clock)
    second = _worker(engine, "B", sender("B"), clock)
    sessions = make_sessionmaker(engine)
    stalled = threading.Event()

    def stall(db_session: Session) -> None:
        # Between the commit and the hand-over to A's senders, A stalls for longer
        # than the lease, and B takes the answer over and sends it.
        if stalled.is_set() or db_session.get_nested_transaction() is not None:
            return
        stalled.set()
        clock.advance(seconds=SETTINGS.lease_s + 1)
        second.start()
        try:
            wait_for(lambda: _rows(engine) == [(1, SENT, None)])
        finally:
            second.stop()

    sa.event.listen(sessions, "after_commit", stall)  # before the hand-over's listener
    express.send_at_once(sessions, first)
    wake_after_commit(sessions, first.wake)
    first.start()
    try:
        with caplog.at_level("WARNING", logger="bot.outbox.worker"), sessions() as db_session:
            _answer(db_session, 1, clock)
            db_session.flush()
            assert db_session.scalars(sa.select(Delivery.claimed_by)).all() == ["A"]
            db_session.commit()
            wait_for(lambda: not first._in_flight)
    finally:
        first.stop()

    assert stalled.is_set()
    assert sent == [("B", 1)]
    [skipped] = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert getattr(skipped, "delivery", None) == 1


def test_a_send_slower_than_its_lease_keeps_its_claim(engine: sa.Engine) -> None:
    clock = ManualClock()
    with make_sessionmaker(engine)() as db_session:  # the worker's to claim
        _answer(db_session, 1, clock)
        db_session.commit()
    on_the_wire, answered = threading.Event(), threading.Event()
    sent: list[tuple[str, int]] = []

    def slow(job: Job) -> Result:
        sent.append(("A", job.id))
        on_the_wire.set()
        answered.wait(30)
        return Sent()

    def lease() -> tuple[str | None, Any]:
        with make_sessionmaker(engine)() as db_session:
            row = db_session.get(Delivery, 1)
            assert row is not None
            return row.claimed_by, row.claimed_until

    first = _worker(engine, "A", slow, clock)
    second = _worker(engine, "B", lambda job: sent.append(("B", job.id)) or Sent(), clock)
    first.start()
    try:
        wait_for(on_the_wire.is_set)
        _, claimed_until = lease()
        clock.advance(seconds=SETTINGS.lease_s * 0.6)  # more than half the lease has run
        wait_for(lambda: lease()[1] > claimed_until)
        clock.advance(seconds=SETTINGS.lease_s * 0.6)  # past the first lease's end
        by, until = lease()
        assert by == "A" and until > clock.now()
        second.dispatch_due()  # another instance's pass finds nothing due
        assert lease()[0] == "A"
        answered.set()
        wait_for(lambda: _rows(engine) == [(1, SENT, None)])
    finally:
        answered.set()
        first.stop()
    assert sent == [("A", 1)]
