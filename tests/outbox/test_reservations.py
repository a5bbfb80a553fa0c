"""A sender held for a claim at once is that claim's alone.

A transaction that outlives its lease loses the sender held for it, and another
claim under the same order key may take its place: the late commit neither takes
that one's reservation nor lends its claim a lease it no longer has, and a send
already on its way under the key is never overwritten. The offers are counted
when their transaction ends (`leased` once handed to a sender, else `unused`),
and every way a lease is lost is counted.
"""

from __future__ import annotations

import threading
import time
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
from bot.outbox.models import PAGERDUTY_EVENT, SENT, SLACK_RESPONSE, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Retry, Sent
from bot.outbox.wake import wake_after_commit
from bot.outbox.worker import OutboxWorker
from tests.support import wait_for

# Real seconds matter here: a sender held for a claim is let go once its lease has
# run on the monotonic clock, so the lease is short and the tests sleep past it.
SHORT = DeliverySettings(lease_s=1.0, request_timeout_s=0.5, poll_interval_s=0.05, workers=2)
LONG = DeliverySettings(lease_s=30.0, request_timeout_s=2.0, poll_interval_s=0.05, workers=2)
URL = "https://hooks.slack.test/commands/1"
ORDER_KEY = f"respond:{URL}"


def _worker(
    engine: sa.Engine,
    instance_id: str,
    send: Any,
    clock: ManualClock,
    *,
    settings: DeliverySettings = SHORT,
    kind: str = SLACK_RESPONSE,
) -> OutboxWorker:
    return OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={kind: send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=settings,
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
    """Answer `n` through one response_url: every answer under one order key."""
    outbox.respond(
        db_session,
        response_url=URL,
        body={"text": f"answer {n}"},
        order_key=ORDER_KEY,
        now=clock.now(),
    )


def _claimed_by(db_session: Session, delivery: int) -> str | None:
    return db_session.scalar(sa.select(Delivery.claimed_by).where(Delivery.id == delivery))


def _statuses(engine: sa.Engine) -> list[tuple[int, str]]:
    with make_sessionmaker(engine)() as db_session:
        query = sa.select(Delivery.id, Delivery.status).order_by(Delivery.id)
        return [(i, status) for i, status in db_session.execute(query)]


def _sample(worker: OutboxWorker, name: str, **labels: str) -> float:
    registry = worker.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels) or 0.0


def _outlive_the_lease(clock: ManualClock, settings: DeliverySettings) -> None:
    time.sleep(settings.lease_s + 0.2)
    clock.advance(seconds=settings.lease_s + 0.2)


def _skip_on_sqlite(engine: sa.Engine) -> None:
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite lets one writer at a time in: no two claims are open together")


def test_a_claim_committed_after_its_lease_ended_does_not_take_the_next_claims_sender(
    engine: sa.Engine,
) -> None:
    _skip_on_sqlite(engine)
    clock = ManualClock()
    sent: list[tuple[str, int]] = []

    def sender(instance_id: str) -> Any:
        def send(job: Job) -> Result:
            sent.append((instance_id, job.id))
            return Sent()

        return send

    first = _worker(engine, "A", sender("A"), clock)
    second = _worker(engine, "B", sender("B"), clock)
    sessions = _at_once_for(engine, first)
    first.start()
    try:
        slow, fast = sessions(), sessions()
        try:
            _answer(slow, 1, clock)
            slow.flush()
            assert _claimed_by(slow, 1) == "A"
            _outlive_the_lease(clock, SHORT)  # its sender is let go, its lease has ended
            _answer(fast, 2, clock)  # answer 1 is not committed: this one goes at once too
            fast.flush()
            assert _claimed_by(fast, 2) == "A"
            slow.commit()  # late: answer 1's lease ended, whatever `fast` holds
            wait_for(lambda: all(lease.delivery != 1 for lease in first._in_flight.values()))
            assert ("A", 1) not in sent
            second.start()  # answer 1 is any instance's now
            wait_for(lambda: ("B", 1) in sent)
            fast.commit()
        finally:
            slow.close()
            fast.close()
        wait_for(lambda: _statuses(engine) == [(1, SENT), (2, SENT)])
    finally:
        first.stop()
        second.stop()
    assert sorted(sent) == [("A", 2), ("B", 1)]
    lost = "opsbot_outbox_lease_lost_total"
    assert _sample(first, lost, stage="reservation_expired") == 1
    # Counted once: by the check before its send, or by the renewals if they found it first
    # while it was queued.
    found = [_sample(first, lost, stage=stage) for stage in ("before_send", "in_flight")]
    assert sum(found) == 1, found


def test_a_late_claim_does_not_replace_a_send_on_its_way_under_its_order_key(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    _skip_on_sqlite(engine)
    clock = ManualClock()
    answered = threading.Event()
    sent: list[int] = []

    def send(job: Job) -> Result:
        sent.append(job.id)
        if job.id == 2:
            answered.wait(30)
        return Sent()

    worker = _worker(engine, "A", send, clock)
    sessions = _at_once_for(engine, worker)
    worker.start()
    try:
        slow, fast = sessions(), sessions()
        try:
            _answer(slow, 1, clock)
            slow.flush()
            _outlive_the_lease(clock, SHORT)
            _answer(fast, 2, clock)
            fast.commit()
            wait_for(lambda: sent == [2])  # on the wire, and held there
            with caplog.at_level("WARNING", logger="bot.outbox.worker"):
                slow.commit()
        finally:
            slow.close()
            fast.close()
        # Answer 2 is still this instance's send under the key: nothing else under it
        # starts beside it, answer 1 included, though its lease has ended.
        assert [lease.delivery for lease in worker._in_flight.values()] == [2]
        worker.dispatch_due()
        time.sleep(0.3)  # some passes of the worker's own
        assert sent == [2]
        answered.set()
        wait_for(lambda: _statuses(engine) == [(1, SENT), (2, SENT)])
    finally:
        answered.set()
        worker.stop()
    assert sent == [2, 1]
    [left] = [r for r in caplog.records if "of its order is on its way" in r.getMessage()]
    assert (getattr(left, "delivery", None), getattr(left, "in_flight", None)) == (1, 2)
    at_once = "opsbot_outbox_at_once_total"
    assert _sample(worker, at_once, outcome="leased") == 1
    assert _sample(worker, at_once, outcome="unused") == 1


def test_an_offer_is_counted_leased_only_when_its_commit_hands_it_to_a_sender(
    engine: sa.Engine,
) -> None:
    clock = ManualClock()
    sent: list[int] = []
    worker = _worker(engine, "A", lambda job: sent.append(job.id) or Sent(), clock, settings=LONG)
    sessions = _at_once_for(engine, worker)
    at_once = "opsbot_outbox_at_once_total"
    worker.start()
    try:
        with sessions() as db_session:
            _answer(db_session, 1, clock)
            db_session.flush()
            assert _claimed_by(db_session, 1) == "A"
            db_session.rollback()  # the answer, and its claim, are gone
        assert (
            _sample(worker, at_once, outcome="leased"),
            _sample(worker, at_once, outcome="unused"),
        ) == (0, 1)
        with sessions() as db_session:
            _answer(db_session, 2, clock)
            db_session.commit()
        wait_for(lambda: len(sent) == 1)  # (SQLite may give it the id the rollback freed)
    finally:
        worker.stop()
    assert (
        _sample(worker, at_once, outcome="leased"),
        _sample(worker, at_once, outcome="unused"),
    ) == (1, 1)


def test_a_send_recorded_after_another_instance_took_it_over_is_counted(engine: sa.Engine) -> None:
    clock = ManualClock()
    with make_sessionmaker(engine)() as db_session:  # the worker's to claim
        _answer(db_session, 1, clock)
        db_session.commit()
    on_the_wire, answered = threading.Event(), threading.Event()

    def slow(job: Job) -> Result:
        on_the_wire.set()
        answered.wait(30)
        return Sent()

    first = _worker(engine, "A", slow, clock, settings=LONG)
    second = _worker(engine, "B", lambda job: Sent(), clock, settings=LONG)
    first.start()
    try:
        wait_for(on_the_wire.is_set)
        clock.advance(seconds=LONG.lease_s + 1)  # A's lease runs out on the wire
        second.start()
        wait_for(lambda: _statuses(engine) == [(1, SENT)])
        answered.set()  # A's answer comes in at last: it may have been sent twice
        wait_for(lambda: not first._in_flight)
    finally:
        answered.set()
        first.stop()
        second.stop()
    assert _sample(first, "opsbot_outbox_lease_lost_total", stage="after_send") == 1


def test_an_outcome_that_could_not_be_recorded_is_counted(engine: sa.Engine) -> None:
    clock = ManualClock()
    with make_sessionmaker(engine)() as db_session:
        outbox.pagerduty_event(
            db_session,
            routing_key_env="PD_KEY",
            dedup_key="k1",
            action="resolve",
            body={},
            now=clock.now(),
        )
        db_session.commit()

    def unrecordable(job: Job) -> Result:
        return Retry(error="a sender's bug", after_s=float("nan"))  # no time to retry at

    worker = _worker(engine, "A", unrecordable, clock, settings=LONG, kind=PAGERDUTY_EVENT)
    worker.start()
    try:
        wait_for(lambda: _sample(worker, "opsbot_outbox_lease_lost_total", stage="not_recorded"))
    finally:
        worker.stop()
