"""The ops monitor's round when its database work fails: logged, counted, and the EMF
lines still written with the failures counted, without the heartbeat (the dead-man's
switch fires on that).

Real engines (SQLite and PostgreSQL): the monitor's pool holds one connection,
held by the test, so its writes fail through SQLAlchemy's own pool timeout.
The outbox's gauges read on an engine of their own, as in `bot/app.py`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.db.engine import make_engine, make_sessionmaker
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops.models import InstanceSeen
from bot.ops.monitor import OpsMonitor
from bot.ops.watch import DeliveryWatch
from bot.outbox.models import SLACK_MESSAGE
from tests.conftest import TEST_CONFIG

INSTANCE = "ip-10-0-0-1.ec2.internal:1:test"
EMF_INTERVAL_S = 60.0


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def documents(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


def heartbeats(lines: list[str]) -> list[float]:
    return [d["opsbot_heartbeat"] for d in documents(lines) if "opsbot_heartbeat" in d]


def instances(engine: sa.Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.scalars(sa.select(InstanceSeen.id)))


def test_a_failing_heartbeat_write_is_logged_counted_and_the_emf_lines_go_out_without_it(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    gauges_engine = make_engine(database_url)
    clock = ManualClock()
    config = parse_config({**TEST_CONFIG, "ops_channel": "C0OPSROOM"})
    metrics = Metrics()
    lines: list[str] = []
    monotonic = Monotonic()
    monitor = OpsMonitor(
        sessions=make_sessionmaker(engine),
        gauges=OutboxGauges(gauges_engine, clock=clock, cache_s=0.0),
        metrics=metrics,
        watch=DeliveryWatch(config=config),
        config=config,
        clock=clock,
        instance_id=INSTANCE,
        is_leader=lambda: True,
        heartbeat_s=15.0,
        emf_interval_s=EMF_INTERVAL_S,
        emf_namespace="opsbot/test",
        emit=lines.append,
        monotonic=monotonic,
    )
    caplog.set_level(logging.INFO, logger="bot.ops")
    metrics.delivery(SLACK_MESSAGE, "dead")

    held = engine.connect()
    try:
        monitor.tick()  # no connection: neither the heartbeat nor the late-page look
    finally:
        held.close()

    assert monitor.db_failures == 3
    assert instances(engine) == []
    # No heartbeat, so the dead-man's switch fires; the rest goes out, and says why.
    assert heartbeats(lines) == []
    [plain] = [d for d in documents(lines) if "target" not in d]
    assert plain["opsbot_monitor_db_failures"] == 3
    assert plain["opsbot_deliveries_dead"] == 1
    assert "opsbot_scheduled_jobs_overdue_seconds" not in plain  # unread, not "none due"
    targets = {d["target"] for d in documents(lines) if "target" in d}
    assert targets == {"pagerduty", "slack", "slack_response", "pagerduty_rest"}
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [getattr(r, "step", None) for r in failures] == [
        "heartbeat",
        "late pages",
        "scheduled jobs",
    ]
    assert all(getattr(r, "instance", None) == INSTANCE for r in failures)
    assert all(getattr(r, "error", None) == "TimeoutError" for r in failures)

    # The database is back: the next interval has its heartbeat, and no failure.
    lines.clear()
    monotonic.now += EMF_INTERVAL_S
    monitor.tick()
    assert heartbeats(lines) == [1]
    [plain] = [d for d in documents(lines) if "target" not in d]
    assert plain["opsbot_monitor_db_failures"] == 0
    assert plain["opsbot_deliveries_dead"] == 0
    assert plain["opsbot_scheduled_jobs_overdue_seconds"] == 0
    assert instances(engine) == [INSTANCE]
    assert monitor.db_failures == 3
    engine.dispose()
    gauges_engine.dispose()
