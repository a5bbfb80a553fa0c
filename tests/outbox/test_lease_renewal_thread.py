"""A send on the wire keeps its lease while the worker's passes are held up.

A pass can wait far longer than a lease: for a row lock a handler's transaction
holds, for a connection of an exhausted pool, on a slow query. The sends already
on the wire must keep their leases meanwhile, or another instance takes the
delivery over and sends it a second time (a second alarm post, a person's
PagerDuty call made twice).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from bot.clock import ManualClock
from bot.config import DeliverySettings
from bot.db.engine import make_engine, make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import PAGERDUTY_EVENT, SENT, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, Result, Retry, Sent
from bot.outbox.worker import OutboxWorker, lease_still_held
from tests.support import wait_for

# Short, so that the renewals (every quarter lease, in real seconds) come soon; the
# leases themselves run on the tests' clock, which moves only when told.
SETTINGS = DeliverySettings(lease_s=2.0, request_timeout_s=1.0, poll_interval_s=0.05, workers=2)


def _worker(
    sessions: sessionmaker[Session],
    instance_id: str,
    send: Callable[[Job], Result],
    clock: ManualClock,
    metrics: Metrics | None = None,
) -> OutboxWorker:
    return OutboxWorker(
        sessions=sessions,
        senders={PAGERDUTY_EVENT: send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=SETTINGS,
        clock=clock,
        instance_id=instance_id,
        metrics=metrics or Metrics(),
    )


def _page(engine: sa.Engine, clock: ManualClock) -> int:
    with make_sessionmaker(engine)() as db_session:
        outbox.pagerduty_event(
            db_session,
            routing_key_env="PD_KEY",
            dedup_key="k1",
            action="trigger",
            body={},
            now=clock.now(),
        )
        db_session.commit()
        return int(db_session.scalars(sa.select(Delivery.id)).one())


def _claim(engine: sa.Engine, delivery: int) -> tuple[str | None, datetime | None, str]:
    with make_sessionmaker(engine)() as db_session:
        row = db_session.get(Delivery, delivery)
        assert row is not None
        return row.claimed_by, row.claimed_until, row.status


def _soon(predicate: Callable[[], Any], timeout_s: float = 10.0) -> bool:
    """Whether `predicate` comes true within `timeout_s` (a bound, not a measure)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class _HeldPasses:
    """Holds the worker's own thread (its passes) at every connection it asks the
    pool for, as an exhausted pool or a lock would: its senders' threads go on."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.holding = threading.Event()
        self.held = threading.Event()  # a pass is waiting here
        self.let_go = threading.Event()

    def _checkout(self, *_args: object) -> None:
        if self.holding.is_set() and threading.current_thread().name == "outbox":
            self.held.set()
            self.let_go.wait(60)

    def __enter__(self) -> _HeldPasses:
        sa.event.listen(self.engine, "checkout", self._checkout)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.let_go.set()
        sa.event.remove(self.engine, "checkout", self._checkout)


@pytest.fixture
def own_engine(database_url: str) -> Iterator[sa.Engine]:
    """Instance A's own engine, so that only its passes are held."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def test_a_send_on_the_wire_is_not_sent_again_while_its_instances_pass_is_held(
    engine: sa.Engine, own_engine: sa.Engine
) -> None:
    clock = ManualClock()
    delivery = _page(engine, clock)
    sends: list[str] = []
    on_the_wire, answered = threading.Event(), threading.Event()

    def slow(_job: Job) -> Result:
        sends.append("A")
        on_the_wire.set()
        answered.wait(60)
        return Sent()

    def quick(_job: Job) -> Result:
        sends.append("B")
        return Sent()

    first = _worker(make_sessionmaker(own_engine), "instance-a", slow, clock)
    second = _worker(make_sessionmaker(engine), "instance-b", quick, clock)
    with _HeldPasses(own_engine) as passes:
        first.start()
        try:
            wait_for(on_the_wire.is_set)
            _, first_until, _ = _claim(engine, delivery)
            assert first_until is not None
            passes.holding.set()
            wait_for(passes.held.is_set)  # A's loop now waits, as long as the test says
            clock.advance(seconds=SETTINGS.lease_s * 0.6)  # more than a quarter left
            # The renewal comes on its own (or, held with the pass, never).
            _soon(lambda: (_claim(engine, delivery)[1] or first_until) > first_until)
            clock.advance(seconds=SETTINGS.lease_s * 0.5)  # past the first lease's end
            second.start()
            second.dispatch_due()
            if _claim(engine, delivery)[0] == "instance-b":
                wait_for(lambda: sends == ["A", "B"])
            passes.let_go.set()
            answered.set()
            wait_for(lambda: _claim(engine, delivery)[2] == SENT)
        finally:
            answered.set()
            passes.let_go.set()
            first.stop()
            second.stop()
    assert sends == ["A"]
    assert _claim(engine, delivery) == (None, None, SENT)


def test_a_sender_asking_after_its_lease_was_taken_over_does_not_make_its_call(
    engine: sa.Engine,
) -> None:
    clock = ManualClock()
    delivery = _page(engine, clock)
    calls: list[str] = []
    looked, go_on = threading.Event(), threading.Event()
    metrics = Metrics()

    def looks_then_posts(_job: Job) -> Result:
        looked.set()  # a slow look for an earlier post, say
        go_on.wait(60)
        if not lease_still_held("the post"):
            return Retry(error="its lease ended before the post")
        calls.append("A")
        return Sent()

    def quick(_job: Job) -> Result:
        calls.append("B")
        return Sent()

    sessions = make_sessionmaker(engine)
    first = _worker(sessions, "instance-a", looks_then_posts, clock, metrics)
    second = _worker(sessions, "instance-b", quick, clock)
    first.start()
    try:
        wait_for(looked.is_set)
        clock.advance(seconds=SETTINGS.lease_s + 1)  # A's lease ends, whatever A renews
        second.start()
        wait_for(lambda: calls == ["B"])
        go_on.set()
        wait_for(lambda: not first._in_flight)
    finally:
        go_on.set()
        first.stop()
        second.stop()
    assert calls == ["B"]
    assert _claim(engine, delivery)[2] == SENT
    lost = metrics.registry.get_sample_value
    stages = ("before_send", "in_flight")
    counted = [lost("opsbot_outbox_lease_lost_total", {"stage": stage}) or 0.0 for stage in stages]
    assert sum(counted) == 1  # one loss, counted once, whoever found it


def test_the_lease_check_outside_a_workers_send_says_held() -> None:
    assert lease_still_held("a post")
