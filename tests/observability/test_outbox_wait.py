"""How long a delivery has waited counts from when it first became due: a resolve held
for the reopen window is not made late by that window when its first try fails, nor
while it is on the wire, nor is a dead one put back in line late by the hours it lay dead."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.adapters.pagerduty import events_client
from bot.clock import ManualClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import read_backlog
from bot.outbox import service as outbox
from bot.outbox.models import PAGERDUTY_EVENT, Delivery
from bot.outbox.pacing import Pacer
from bot.outbox.pagerduty_sender import PagerDutySender
from bot.outbox.worker import OutboxWorker
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.tls import TestCA
from tests.conftest import PD_ROUTING_KEY
from tests.support import wait_for

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
WINDOW = timedelta(seconds=300)  # alarms.reopen_window_s
ENQUEUE = ("/v2/enqueue",)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def worker(
    engine: sa.Engine, pagerduty: PagerDutyEmulator, test_ca: TestCA, clock: ManualClock
) -> Iterator[OutboxWorker]:
    client = events_client(
        PD_ROUTING_KEY, base_url=pagerduty.url, tls=test_ca.client_context(), timeout_s=5.0
    )
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={PAGERDUTY_EVENT: PagerDutySender(lambda _env: client).send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=DeliverySettings(),
        clock=clock,
        metrics=Metrics(),
    )
    yield worker
    worker.stop()


def _resolve_held_for_the_window(engine: sa.Engine) -> None:
    with make_sessionmaker(engine)() as db:
        outbox.pagerduty_event(
            db,
            routing_key_env="PD_KEY_PROD",
            dedup_key="alarm-1",
            action="resolve",
            body={},
            now=T0,
            not_before=T0 + WINDOW,
        )
        db.commit()


def _row(engine: sa.Engine) -> Delivery:
    with make_sessionmaker(engine)() as db:
        return db.scalars(sa.select(Delivery)).one()


def _waited_s(engine: sa.Engine, now: datetime) -> float:
    with make_sessionmaker(engine)() as db:
        return read_backlog(db, now).oldest_s("pagerduty", now)


def test_a_resolve_whose_first_try_failed_has_waited_since_its_window_ended(
    engine: sa.Engine, pagerduty: PagerDutyEmulator, worker: OutboxWorker, clock: ManualClock
) -> None:
    _resolve_held_for_the_window(engine)
    assert _waited_s(engine, T0 + WINDOW - timedelta(seconds=1)) == 0.0  # held on purpose

    pagerduty.faults.fail_next(1, status=502, calls=ENQUEUE)
    clock.set(T0 + WINDOW + timedelta(seconds=1))
    worker.start()
    wait_for(lambda: _row(engine).last_error is not None)
    row = _row(engine)
    assert (row.status, row.attempts, row.claimed_by) == ("pending", 1, None)
    assert row.not_before > clock.now()  # waiting out its backoff

    # Late by the second since its window ended, not by the window itself.
    assert _waited_s(engine, clock.now()) == 1.0
    assert _waited_s(engine, clock.now() + timedelta(seconds=30)) == 31.0


def test_a_resolve_on_the_wire_at_its_windows_end_is_not_late(
    engine: sa.Engine, pagerduty: PagerDutyEmulator, worker: OutboxWorker, clock: ManualClock
) -> None:
    _resolve_held_for_the_window(engine)
    release = threading.Event()
    pagerduty.faults.answer_late_next(1, release=release, calls=ENQUEUE)
    clock.set(T0 + WINDOW)
    worker.start()
    try:
        wait_for(lambda: _row(engine).claimed_by is not None and pagerduty.events)
        assert _waited_s(engine, clock.now() + timedelta(milliseconds=200)) == 0.2
    finally:
        release.set()
    wait_for(lambda: _row(engine).status == "sent")


def test_a_dead_delivery_put_back_in_line_waits_from_then(engine: sa.Engine) -> None:
    _resolve_held_for_the_window(engine)
    resolve = _row(engine).id
    with make_sessionmaker(engine)() as db:
        db.execute(
            sa.update(Delivery).values(
                status="dead", attempts=1, last_error="PagerDuty refused the event (400)"
            )
        )
        db.commit()
        revived_at = T0 + timedelta(hours=5)
        assert outbox.revive_dead(db, now=revived_at).revived == [resolve]
        db.commit()

    assert _waited_s(engine, revived_at) == 0.0
    assert _waited_s(engine, revived_at + timedelta(seconds=10)) == 10.0
