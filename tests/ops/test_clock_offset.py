"""Each instance compares its clock with PostgreSQL's at every heartbeat.

A delivery's lease is written by one instance's clock and judged by another's:
instances apart by half a lease send one delivery twice. The offset is a gauge
(`opsbot_clock_offset_seconds`), and a drift past a quarter of a lease is a
WARNING once, and an INFO line once it ends. On SQLite (one host, one clock)
there is nothing to compare.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops import instances
from bot.ops.monitor import OpsMonitor
from bot.ops.watch import DeliveryWatch
from tests.conftest import TEST_CONFIG


def monitor(engine: sa.Engine, clock: ManualClock, metrics: Metrics) -> OpsMonitor:
    config = parse_config(TEST_CONFIG)
    return OpsMonitor(
        sessions=make_sessionmaker(engine),
        gauges=OutboxGauges(engine, clock=clock, cache_s=0.0),
        metrics=metrics,
        watch=DeliveryWatch(config=config),
        config=config,
        clock=clock,
        instance_id="test",
        is_leader=lambda: False,
        heartbeat_s=15.0,
        emf_interval_s=0.0,
        emf_namespace="opsbot/test",
    )


def offset(metrics: Metrics) -> float | None:
    return metrics.registry.get_sample_value("opsbot_clock_offset_seconds")


def test_a_clock_a_minute_ahead_of_the_database_is_said_once_and_its_end_too(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    clock = ManualClock(datetime.now(UTC) + timedelta(minutes=1))
    watch = monitor(engine, clock, metrics)
    caplog.set_level(logging.INFO, logger="bot.ops")

    watch.tick()
    watch.tick()
    if engine.dialect.name != "postgresql":
        assert offset(metrics) == 0  # never set: no clock of its own to compare with
        assert not [r for r in caplog.records if getattr(r, "condition", "") == "clock_offset"]
        return
    assert 55 <= (offset(metrics) or 0) <= 65
    said = [r for r in caplog.records if getattr(r, "condition", "") == "clock_offset"]
    assert [r.levelno for r in said] == [logging.WARNING]  # once, not each round
    assert "60" in said[0].getMessage() or "59" in said[0].getMessage()

    clock.set(datetime.now(UTC))
    watch.tick()
    assert abs(offset(metrics) or 0) < 5
    said = [r for r in caplog.records if getattr(r, "condition", "") == "clock_offset"]
    assert [r.levelno for r in said] == [logging.WARNING, logging.INFO]


def test_the_clock_is_read_once_the_connection_is_in_hand(engine: sa.Engine) -> None:
    # A storm holds the pool: a wait for a connection between the two readings of
    # this clock would count half of itself as drift.
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite has no clock of its own")
    with make_sessionmaker(engine)() as db_session:
        connected: list[bool] = []

        def now() -> datetime:
            connected.append(db_session.in_transaction())
            return datetime.now(UTC)

        assert instances.clock_offset_s(db_session, now) is not None
    assert connected == [True, True]
