"""A backlog the worker cannot claim yet costs a pass per poll interval, not twenty a second.

During an outage the deliveries queued behind one in backoff (a resolve behind
its trigger) are past their own time but not in their turn; one claimed by
another instance is not this one's until its lease ends. Neither is reason to
look again at once.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import PAGERDUTY_EVENT, PENDING, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Sent
from bot.outbox.worker import OutboxWorker
from tests.support import statements_sent, wait_for

POLL_S = 0.2
SETTINGS = DeliverySettings(lease_s=30.0, request_timeout_s=2.0, poll_interval_s=POLL_S)


def _worker(engine: sa.Engine, clock: ManualClock, sent: list[int]) -> OutboxWorker:
    def send(job: Job) -> Result:
        sent.append(job.id)
        return Sent()

    return OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={PAGERDUTY_EVENT: send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=SETTINGS,
        clock=clock,
        instance_id="instance-a",
        metrics=Metrics(),
    )


def _trigger_and_resolve(engine: sa.Engine, clock: ManualClock) -> tuple[int, int]:
    with make_sessionmaker(engine)() as db_session:
        for action in ("trigger", "resolve"):
            outbox.pagerduty_event(
                db_session,
                routing_key_env="PD_KEY",
                dedup_key="k1",
                action=action,
                body={},
                now=clock.now(),
            )
        db_session.commit()
        first, second = db_session.scalars(sa.select(Delivery.id).order_by(Delivery.id))
        return first, second


def _backlog_behind_a_backoff(engine: sa.Engine, clock: ManualClock) -> None:
    """The trigger failed and waits two minutes; its resolve, due, waits behind it."""
    trigger, _ = _trigger_and_resolve(engine, clock)
    with make_sessionmaker(engine)() as db_session:
        db_session.execute(
            sa.update(Delivery)
            .where(Delivery.id == trigger)
            .values(attempts=1, not_before=clock.now() + timedelta(seconds=120))
        )
        db_session.commit()


def _claimed_elsewhere(engine: sa.Engine, clock: ManualClock) -> None:
    """Both due, the first on the wire at another instance, its lease running."""
    trigger, _ = _trigger_and_resolve(engine, clock)
    with make_sessionmaker(engine)() as db_session:
        db_session.execute(
            sa.update(Delivery)
            .where(Delivery.id == trigger)
            .values(
                attempts=1,
                claimed_by="instance-b",
                claimed_until=clock.now() + timedelta(seconds=SETTINGS.lease_s),
            )
        )
        db_session.commit()


@pytest.mark.parametrize("backlog", [_backlog_behind_a_backoff, _claimed_elsewhere])
def test_a_pass_that_finds_nothing_it_may_claim_waits_the_poll_interval(
    engine: sa.Engine, backlog: object
) -> None:
    clock = ManualClock()
    assert callable(backlog)
    backlog(engine, clock)
    sent: list[int] = []
    worker = _worker(engine, clock, sent)
    worker.start()  # its senders; its loop's passes find nothing either
    try:
        assert worker.dispatch_due() == pytest.approx(POLL_S)
    finally:
        worker.stop()
    assert sent == []


def test_a_backlog_behind_a_backoff_costs_a_pass_per_poll_interval(engine: sa.Engine) -> None:
    clock = ManualClock()
    _backlog_behind_a_backoff(engine, clock)
    sent: list[int] = []
    worker = _worker(engine, clock, sent)
    window_s = 1.0
    with statements_sent(engine) as statements:

        def passes() -> int:
            # The query for due work, the one statement every pass that gets a sender sends.
            return sum(1 for sql, _ in statements if "ORDER BY DELIVERIES.PRIORITY" in sql)

        worker.start()
        try:
            wait_for(passes)
            # A bound on passes only: a machine slower than this one makes fewer, never more.
            time.sleep(window_s)
            seen = passes()
        finally:
            worker.stop()
    assert seen <= 2 * (window_s / POLL_S) + 2
    assert sent == []
    with make_sessionmaker(engine)() as db_session:
        statuses = db_session.scalars(sa.select(Delivery.status)).all()
    assert statuses == [PENDING, PENDING]
