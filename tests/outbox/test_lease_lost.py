"""A send that outlives its lease: the instance that took the delivery over decides.

The first instance's late failure must not mark the delivery dead, tell
operators it was abandoned, nor count a death (which pages).
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import DeliverySettings, parse_config
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.ops.watch import DeliveryWatch
from bot.outbox import service as outbox
from bot.outbox.models import PAGERDUTY_EVENT, SENT, SLACK_MESSAGE, Delivery, SlackMessage
from bot.outbox.pacing import Pacer
from bot.outbox.results import Dead, Job, Result, Retry, Sent
from bot.outbox.worker import OutboxWorker
from tests.conftest import TEST_CONFIG
from tests.support import wait_for

SETTINGS = DeliverySettings(lease_s=5.0, request_timeout_s=2.0, poll_interval_s=0.05)


def _worker(
    engine: sa.Engine,
    instance_id: str,
    send: Any,
    clock: ManualClock,
    metrics: Metrics,
    kind: str = PAGERDUTY_EVENT,
) -> OutboxWorker:
    return OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={kind: send},
        pacer=Pacer(lambda lane: (100.0, 100.0)),
        settings=SETTINGS,
        clock=clock,
        instance_id=instance_id,
        metrics=metrics,
        observer=DeliveryWatch(config=parse_config({**TEST_CONFIG, "ops_channel": "C0OPSCHAN"})),
    )


def _dead(metrics: Metrics) -> float:
    sample = metrics.registry.get_sample_value(
        "opsbot_deliveries_total", {"target": "pagerduty", "outcome": "dead"}
    )
    return sample or 0.0


def test_a_failure_after_the_lease_ran_out_is_left_to_the_instance_that_took_over(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        outbox.pagerduty_event(
            db_session,
            routing_key_env="PD_KEY",
            dedup_key="k1",
            action="resolve",
            body={},
            now=clock.now(),
        )
        db_session.commit()
        [delivery] = db_session.scalars(sa.select(Delivery.id)).all()

    on_the_wire = threading.Event()
    answered = threading.Event()

    def slow_then_refused(_job: Job) -> Result:
        on_the_wire.set()
        answered.wait(timeout=30)
        return Dead(error="PagerDuty refused the event (400)")

    metrics_a, metrics_b = Metrics(), Metrics()
    first = _worker(engine, "instance-a", slow_then_refused, clock, metrics_a)
    second = _worker(engine, "instance-b", lambda _job: Sent(), clock, metrics_b)
    first.start()
    try:
        wait_for(on_the_wire.is_set)
        clock.advance(seconds=SETTINGS.lease_s + 1)  # instance-a's lease runs out
        with caplog.at_level("INFO", logger="bot.outbox.worker"):
            second.start()

            def sent() -> bool:
                with sessions() as db_session:
                    return db_session.get(Delivery, delivery).status == SENT  # type: ignore[union-attr]

            wait_for(sent)
            answered.set()  # instance-a's answer comes in at last
            wait_for(lambda: not first._in_flight)
    finally:
        answered.set()
        first.stop()
        second.stop()

    with sessions() as db_session:
        row = db_session.get(Delivery, delivery)
        assert row is not None and (row.status, row.last_error) == (SENT, None)
        notices = db_session.scalars(sa.select(SlackMessage.key)).all()
    assert notices == []  # no "dead deliveries" message for operators
    assert _dead(metrics_a) == 0
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert not [m for level, m in messages if "abandoned" in m]
    [takeover] = [r for r in caplog.records if "taken over" in r.getMessage()]
    assert takeover.levelname == "INFO" and getattr(takeover, "delivery", None) == delivery
    assert "instance-a" in takeover.getMessage()
    [late] = [m for level, m in messages if "after its lease ended" in m]
    assert f"delivery {delivery} " in late


def test_a_retry_after_the_lease_ran_out_keeps_the_message_the_other_instance_posted(
    engine: sa.Engine,
) -> None:
    clock = ManualClock()
    sessions = make_sessionmaker(engine)
    with sessions() as db_session:
        outbox.post_or_update(
            db_session,
            key="incident:1",
            channel="C0PRODALERTS",
            message={"text": "hi"},
            now=clock.now(),
        )
        db_session.commit()
        [delivery] = db_session.scalars(sa.select(Delivery.id)).all()

    on_the_wire, answered = threading.Event(), threading.Event()

    def slow_then_gone(_job: Job) -> Result:
        on_the_wire.set()
        answered.wait(timeout=30)
        return Retry(error="message_not_found", forget_ts=True)

    def posted(_job: Job) -> Result:
        return Sent(ts="1700000000.000100", channel_id="C0PRODALERTS")

    first = _worker(engine, "instance-a", slow_then_gone, clock, Metrics(), kind=SLACK_MESSAGE)
    second = _worker(engine, "instance-b", posted, clock, Metrics(), kind=SLACK_MESSAGE)
    first.start()
    try:
        wait_for(on_the_wire.is_set)
        clock.advance(seconds=SETTINGS.lease_s + 1)  # instance-a's lease runs out
        second.start()

        def sent() -> bool:
            with sessions() as db_session:
                return db_session.get(Delivery, delivery).status == SENT  # type: ignore[union-attr]

        wait_for(sent)
        answered.set()  # instance-a's "not found" comes in at last
        wait_for(lambda: not first._in_flight)
    finally:
        answered.set()
        first.stop()
        second.stop()

    with sessions() as db_session:
        message = db_session.scalars(
            sa.select(SlackMessage).where(SlackMessage.key == "incident:1")
        ).one()
        assert message is not None and message.ts == "1700000000.000100"
        row = db_session.get(Delivery, delivery)
        assert row is not None and (row.status, row.last_error) == (SENT, None)
