"""Scheduled jobs: persisted in the database, run on a test clock, one leader at a time."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.app import build_runtime
from bot.clock import ManualClock
from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from tests.support import wait_for

RAN: list[tuple[str, Any]] = []
RAN_LOCK = threading.Lock()


def with_record_job(runtime: Runtime) -> Runtime:
    """`runtime`, with a job `test.record` that notes its label and the instance running it."""

    def record(*, label: str) -> None:
        with RAN_LOCK:
            RAN.append((label, runtime.outbox.instance_id))

    runtime.jobs["test.record"] = record
    return runtime


@pytest.fixture(autouse=True)
def _reset() -> None:
    RAN.clear()


def test_job_runs_when_the_test_clock_says_so_and_survives_a_restart(
    settings: Settings, config: Config
) -> None:
    clock = ManualClock(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    first = with_record_job(build_runtime(settings, config, clock=clock, run_jobs=False))
    first.start()
    first.scheduler.schedule(
        "test.record", at=clock.now() + timedelta(minutes=5), job_id="j1", label="reminder"
    )
    assert first.scheduler.run_due(clock.now()) == []
    first.stop()

    second = with_record_job(build_runtime(settings, config, clock=clock, run_jobs=False))
    second.start()
    try:
        assert [job_id for job_id, _ in second.scheduler.pending()] == ["j1"]
        clock.advance(minutes=5)
        assert second.scheduler.run_due(clock.now()) == ["j1"]
        assert [("reminder", second.outbox.instance_id)] == RAN
        assert second.scheduler.pending() == []
    finally:
        second.stop()


def test_cancelled_job_never_runs(settings: Settings, config: Config) -> None:
    clock = ManualClock()
    runtime = with_record_job(build_runtime(settings, config, clock=clock, run_jobs=False))
    runtime.start()
    try:
        runtime.scheduler.schedule(
            "test.record", at=clock.now() + timedelta(minutes=1), job_id="j2", label="x"
        )
        assert runtime.scheduler.cancel("j2") is True
        assert runtime.scheduler.cancel("j2") is False
        clock.advance(minutes=2)
        assert runtime.scheduler.run_due(clock.now()) == []
        assert RAN == []
    finally:
        runtime.stop()


def test_only_the_leader_runs_jobs_and_leadership_moves_when_it_dies(
    settings: Settings, config: Config, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several instances need PostgreSQL; SQLite is the single-instance default")
    one = with_record_job(build_runtime(settings, config))
    two = with_record_job(build_runtime(settings, config))
    for runtime in (one, two):
        runtime.scheduler.leader_interval_s = 0.2
    one.start()
    wait_for(lambda: one.scheduler.is_leader)
    two.start()
    try:
        soon = datetime.now(UTC) + timedelta(seconds=0.5)
        for n in range(5):
            two.scheduler.schedule("test.record", at=soon, job_id=f"lead-{n}", label=f"n{n}")
        wait_for(lambda: len(RAN) == 5)
        assert not two.scheduler.is_leader
        assert {instance for _, instance in RAN} == {one.outbox.instance_id}

        one.stop()  # its connection closes; PostgreSQL releases the lock
        wait_for(lambda: two.scheduler.is_leader, timeout_s=10)
        two.scheduler.schedule("test.record", at=datetime.now(UTC), job_id="after", label="after")
        wait_for(lambda: len(RAN) == 6)
        assert RAN[-1] == ("after", two.outbox.instance_id)
    finally:
        two.stop()


def test_every_job_a_domain_schedules_has_its_function(settings: Settings, config: Config) -> None:
    from bot.approvals.flows import EXPIRE_JOB
    from bot.changes.flows import LOOK_JOB, LOST_JOB
    from bot.deploys.flows import WATCH_JOB as DEPLOY_WATCH_JOB
    from bot.deploys.locks import REMINDER_JOB
    from bot.flags.flows import SETTLE_JOB as FLAG_SETTLE_JOB
    from bot.flags.flows import WATCH_JOB as FLAG_WATCH_JOB
    from bot.incidents.flows import (
        ARCHIVE_CHANNEL_JOB,
        ESCALATE_JOB,
        REMIND_JOB,
        SILENCE_END_JOB,
    )
    from bot.maintenance.flows import END_JOB as WINDOW_END_JOB
    from bot.oncall.jobs import HANDOFF_JOB

    runtime = build_runtime(settings, config, run_jobs=False)
    try:
        assert set(runtime.jobs) == {
            EXPIRE_JOB,
            DEPLOY_WATCH_JOB,
            REMINDER_JOB,
            FLAG_WATCH_JOB,
            FLAG_SETTLE_JOB,
            ESCALATE_JOB,
            REMIND_JOB,
            SILENCE_END_JOB,
            ARCHIVE_CHANNEL_JOB,
            HANDOFF_JOB,
            LOOK_JOB,
            LOST_JOB,
            WINDOW_END_JOB,
        }
    finally:
        runtime.engine.dispose()


def test_a_job_name_two_domains_claim_is_refused() -> None:
    from bot.scheduler.registry import jobs_table

    def noop() -> None:
        return None

    with pytest.raises(ValueError, match="registered twice"):
        jobs_table({"a.job": noop}, {"a.job": noop})
