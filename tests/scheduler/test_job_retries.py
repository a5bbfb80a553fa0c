"""A scheduled job that raises runs again under its own id, later each time, then is given up.

APScheduler removes a date job from the store when it runs it: without retries a
maintenance window whose end failed once would hold its pages until the next
start. The failures here are the database's own (a table renamed away).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.observability.metrics import Metrics
from bot.runtime import Runtime
from bot.scheduler.scheduler import JobScheduler
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, incident_message, only_incident, outbox_idle, send_alarm
from tests.maintenance.conftest import silence, windows_of
from tests.scheduler.tables import table_gone
from tests.support import LiveService, wait_for

END = "maintenance:1:end"
WINDOW_END = "maintenance.window_end"
SCHEDULER_LOG = "bot.scheduler.scheduler"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def held(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    clock: ManualClock,
) -> Iterator[tuple[LiveService, str]]:
    """A service on the test clock with a 30-minute window holding one page: it and the
    page's dedup key. Its own scheduler runs nothing (the tests run theirs)."""
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    service = make_service(settings, parse_config(TEST_CONFIG), clock=clock, run_jobs=False)
    silence(service, slack, "silence prod-api-5xx for 30m reason deploy")
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0)
    incident = wait_for(lambda: only_incident(service, "prod-api-5xx"))
    wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: outbox_idle(service))
    yield service, incident.dedup_key
    sns_signer.clock = stamped_by


def job_scheduler(runtime: Runtime, *, background: bool, retry_first_s: float = 30) -> JobScheduler:
    """Another instance's scheduler over the runtime's job store, counting into its metrics."""
    return JobScheduler(
        runtime.engine,
        background=background,
        leader_interval_s=0.2,
        failures=runtime.metrics.scheduled_job_failures,
        retry_first_s=retry_first_s,
    )


def failures(metrics: Metrics, job: str, outcome: str) -> float:
    sample = metrics.registry.get_sample_value(
        "opsbot_scheduled_job_failures_total", {"job": job, "outcome": outcome}
    )
    assert sample is not None, "every registered job's label set exists from the start"
    return sample


def test_a_window_end_that_fails_is_tried_again_under_its_id_and_then_pages(
    held: tuple[LiveService, str],
    clock: ManualClock,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service, dedup_key = held
    runtime = service.runtime
    scheduler = job_scheduler(runtime, background=False)
    scheduler.start(runtime.jobs)
    try:
        assert scheduler.pending() == [(END, T0 + timedelta(minutes=30))]
        assert failures(runtime.metrics, WINDOW_END, "retried") == 0
        clock.advance(minutes=30)
        with (
            caplog.at_level(logging.WARNING, logger=SCHEDULER_LOG),
            table_gone(runtime.engine, "maintenance_windows"),
        ):
            assert scheduler.run_due(clock.now()) == [END]
        assert scheduler.pending() == [(END, clock.now() + timedelta(seconds=30))]
        assert failures(runtime.metrics, WINDOW_END, "retried") == 1
        [window] = windows_of(service)
        assert window.ended_at is None
        assert pagerduty.events_for(dedup_key) == []
        [said] = [r for r in caplog.records if r.name == SCHEDULER_LOG]
        assert said.levelno == logging.WARNING and said.exc_info is not None
        assert (said.job, said.job_id, said.attempt) == (WINDOW_END, END, 1)  # type: ignore[attr-defined]
        assert f"job {WINDOW_END} {END} {{'window_id': 1}} failed (1 time(s))" in said.getMessage()

        clock.advance(seconds=29)
        assert scheduler.run_due(clock.now()) == []
        clock.advance(seconds=1)
        assert scheduler.run_due(clock.now()) == [END]
        [trigger] = wait_for(lambda: pagerduty.events_for(dedup_key))
        assert trigger["event_action"] == "trigger"
        [window] = windows_of(service)
        assert window.ended_at is not None
        assert scheduler.pending() == []
        assert failures(runtime.metrics, WINDOW_END, "retried") == 1
        assert failures(runtime.metrics, WINDOW_END, "gave_up") == 0
    finally:
        scheduler.stop()


def test_the_leaders_executor_runs_a_failed_job_again_once_the_database_is_back(
    held: tuple[LiveService, str], clock: ManualClock, pagerduty: PagerDutyEmulator
) -> None:
    service, dedup_key = held
    runtime = service.runtime
    clock.advance(minutes=30)
    scheduler = job_scheduler(runtime, background=True, retry_first_s=0.2)
    with table_gone(runtime.engine, "maintenance_windows"):
        # Due now by the machine's clock too (a restart would re-schedule it so). Stored
        # through the service (which runs no jobs) before the leader starts: else the
        # leader could first run the stored due time, and this schedule replace its retry.
        runtime.scheduler.schedule(WINDOW_END, at=datetime.now(UTC), job_id=END, window_id=1)
        scheduler.start(runtime.jobs)
        try:
            wait_for(lambda: failures(runtime.metrics, WINDOW_END, "retried") >= 1)
        except BaseException:
            scheduler.stop()
            raise
    try:
        [trigger] = wait_for(lambda: pagerduty.events_for(dedup_key))
        assert trigger["event_action"] == "trigger"
        wait_for(lambda: scheduler.pending() == [])
        [window] = windows_of(service)
        assert window.ended_at is not None
        assert failures(runtime.metrics, WINDOW_END, "gave_up") == 0
    finally:
        scheduler.stop()


def test_a_job_that_keeps_failing_is_given_up_after_its_attempts(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    scheduler = JobScheduler(
        engine, background=False, failures=metrics.scheduled_job_failures, retries=2
    )

    def count_reports(*, report_id: int, note: str) -> None:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM no_such_table")

    scheduler.start({"test.count_reports": count_reports})
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    try:
        scheduler.schedule(
            "test.count_reports", at=now, job_id="count", report_id=7, note="free text"
        )
        with caplog.at_level(logging.WARNING, logger=SCHEDULER_LOG):
            for wait_s in (30, 60):
                assert scheduler.run_due(now) == ["count"]
                now += timedelta(seconds=wait_s)
                assert scheduler.pending() == [("count", now)]
            assert scheduler.run_due(now) == ["count"]
        assert scheduler.pending() == []
        assert failures(metrics, "test.count_reports", "retried") == 2
        assert failures(metrics, "test.count_reports", "gave_up") == 1
        said = [r for r in caplog.records if r.name == SCHEDULER_LOG]
        assert [r.levelno for r in said] == [logging.WARNING, logging.WARNING, logging.ERROR]
        last = said[-1].getMessage()
        assert "job test.count_reports count {'report_id': 7} failed (3 time(s))" in last
        assert "given up (out of attempts)" in last
        assert "free text" not in last  # only ids and keys are shown
    finally:
        scheduler.stop()


def test_a_failed_run_leaves_a_newer_schedule_of_its_id_as_it_is(engine: sa.Engine) -> None:
    metrics = Metrics()
    scheduler = JobScheduler(engine, background=False, failures=metrics.scheduled_job_failures)
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    later = now + timedelta(hours=1)

    def moved_then_failed(*, step: int) -> None:
        """Like a due time moved (and its job scheduled anew) while the old run fails."""
        if step == 0:
            scheduler.schedule("test.moved", at=later, job_id="moved", step=1)
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT * FROM no_such_table")

    scheduler.start({"test.moved": moved_then_failed})
    try:
        scheduler.schedule("test.moved", at=now, job_id="moved", step=0)
        assert scheduler.run_due(now) == ["moved"]
        assert scheduler.pending() == [("moved", later)]
        assert failures(metrics, "test.moved", "superseded") == 1
        assert failures(metrics, "test.moved", "retried") == 0
        assert scheduler.run_due(later) == ["moved"]
        assert scheduler.pending() == []
    finally:
        scheduler.stop()
