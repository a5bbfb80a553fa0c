"""The ops monitor tells operators when scheduled jobs stop running or are given up.

Reminders, escalations, window ends and handoffs run on the leader only; a job
still stored long past its time means no instance runs them, and a job given
up after its last retry runs no more. Both reach the EMF lines (the alarms in
infra/modules/service/alarms.tf watch them), the Prometheus gauge and the log.
Real engines (SQLite and PostgreSQL) and a real job scheduler that runs nothing
by itself, driven by the test's clock.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops.monitor import JOBS_LATE_AFTER_S, OpsMonitor
from bot.ops.watch import DeliveryWatch
from bot.scheduler.scheduler import JobScheduler
from tests.conftest import TEST_CONFIG

EMF_INTERVAL_S = 60.0


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plain_line(lines: list[str]) -> dict[str, Any]:
    [plain] = [d for d in map(json.loads, lines) if "target" not in d]
    return plain


def late_logs(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [
        (r.levelno, r.getMessage().split(":")[0])
        for r in caplog.records
        if getattr(r, "condition", None) == "jobs_late"
    ]


def make_monitor(
    engine: sa.Engine, clock: ManualClock, metrics: Metrics, lines: list[str], monotonic: Monotonic
) -> OpsMonitor:
    config = parse_config(TEST_CONFIG)
    return OpsMonitor(
        sessions=make_sessionmaker(engine),
        gauges=OutboxGauges(engine, clock=clock, cache_s=0.0),
        metrics=metrics,
        watch=DeliveryWatch(config=config),
        config=config,
        clock=clock,
        instance_id="ip-10-0-0-1.ec2.internal:1:test",
        is_leader=lambda: False,
        heartbeat_s=15.0,
        emf_interval_s=EMF_INTERVAL_S,
        emf_namespace="opsbot/test",
        emit=lines.append,
        monotonic=monotonic,
    )


def test_a_job_left_in_the_store_past_its_time_is_reported_late_once_and_its_end_too(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    metrics = Metrics()
    lines: list[str] = []
    monotonic = Monotonic()
    monitor = make_monitor(engine, clock, metrics, lines, monotonic)
    scheduler = JobScheduler(engine, background=False)  # like an instance that never leads
    scheduler.start({"test.remind": lambda **_: None})
    caplog.set_level(logging.INFO, logger="bot.ops")
    try:
        scheduler.schedule("test.remind", at=clock.now(), job_id="remind-1", incident_id=1)
        scheduler.schedule(
            "test.remind", at=clock.now() + timedelta(hours=1), job_id="remind-2", incident_id=2
        )

        monitor.tick()  # due just now: not late
        assert plain_line(lines)["opsbot_scheduled_jobs_overdue_seconds"] == 0
        assert late_logs(caplog) == []

        for _ in range(2):  # late, and still late: said once
            lines.clear()
            clock.advance(seconds=JOBS_LATE_AFTER_S + 30)
            monotonic.now += EMF_INTERVAL_S
            monitor.tick()
        overdue = 2 * (JOBS_LATE_AFTER_S + 30)
        assert plain_line(lines)["opsbot_scheduled_jobs_overdue_seconds"] == overdue
        assert metrics.registry.get_sample_value("opsbot_scheduled_jobs_overdue_seconds") == (
            overdue
        )
        assert late_logs(caplog) == [(logging.ERROR, "scheduled jobs are late")]

        scheduler.run_due(clock.now())  # a leader again: both ran, the store is empty
        lines.clear()
        monotonic.now += EMF_INTERVAL_S
        monitor.tick()
        assert plain_line(lines)["opsbot_scheduled_jobs_overdue_seconds"] == 0
        assert late_logs(caplog)[-1] == (logging.INFO, "scheduled jobs run on time again")
    finally:
        scheduler.stop()


def test_a_job_given_up_is_counted_in_the_next_interval_only(engine: sa.Engine) -> None:
    clock = ManualClock()
    metrics = Metrics()
    lines: list[str] = []
    monotonic = Monotonic()
    monitor = make_monitor(engine, clock, metrics, lines, monotonic)
    scheduler = JobScheduler(
        engine, background=False, failures=metrics.scheduled_job_failures, retries=1
    )

    def broken(**_: object) -> None:
        raise RuntimeError("the job's code is broken")

    scheduler.start({"test.broken": broken})
    try:
        monitor.tick()
        assert plain_line(lines)["opsbot_scheduled_jobs_given_up"] == 0

        scheduler.schedule("test.broken", at=clock.now(), job_id="broken", incident_id=7)
        scheduler.run_due(clock.now())  # fails: retried later
        clock.advance(hours=1)
        scheduler.run_due(clock.now())  # fails again: given up
        lines.clear()
        monotonic.now += EMF_INTERVAL_S
        monitor.tick()
        assert plain_line(lines)["opsbot_scheduled_jobs_given_up"] == 1
        assert plain_line(lines)["opsbot_scheduled_jobs_overdue_seconds"] == 0  # gone

        lines.clear()
        monotonic.now += EMF_INTERVAL_S
        monitor.tick()
        assert plain_line(lines)["opsbot_scheduled_jobs_given_up"] == 0
    finally:
        scheduler.stop()


def test_alarms_not_applied_and_unsubscribes_are_counted_in_the_next_interval_only(
    engine: sa.Engine,
) -> None:
    # The intake and POST /sns count them in Prometheus, which no AWS alarm reads: the
    # EMF lines carry them to the alarm-not-applied and sns-unsubscribed alarms.
    clock = ManualClock()
    metrics = Metrics()
    lines: list[str] = []
    monotonic = Monotonic()
    monitor = make_monitor(engine, clock, metrics, lines, monotonic)
    monitor.tick()
    assert plain_line(lines)["opsbot_intake_apply_failed"] == 0
    assert plain_line(lines)["opsbot_sns_unsubscribed"] == 0

    metrics.intake_apply_failed.inc()
    metrics.intake_apply_failed.inc()
    metrics.sns_unsubscribed.inc()
    lines.clear()
    monotonic.now += EMF_INTERVAL_S
    monitor.tick()
    assert plain_line(lines)["opsbot_intake_apply_failed"] == 2
    assert plain_line(lines)["opsbot_sns_unsubscribed"] == 1

    lines.clear()
    monotonic.now += EMF_INTERVAL_S
    monitor.tick()
    assert plain_line(lines)["opsbot_intake_apply_failed"] == 0
    assert plain_line(lines)["opsbot_sns_unsubscribed"] == 0
