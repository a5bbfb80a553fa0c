"""Jobs that page run beside slow ones, and a job waiting for a worker is seen as late.

Four deploy watches stuck on a slow AWS API held every worker of the job pool:
an escalation due meanwhile was taken out of the store and waited in the
pool's queue, where the lateness figure (the jobs-late alarm) read 0. Jobs
whose names start `incidents.` or `maintenance.` have a pool of their own; a
job of the busy pool that waits for a worker counts in the lateness the ops
monitor reports. Real job store; the slow jobs are held by an event, not a clock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.incidents.flows import (
    ARCHIVE_CHANNEL_JOB,
    ESCALATE_JOB,
    REMIND_JOB,
    SILENCE_END_JOB,
)
from bot.maintenance.flows import END_JOB
from bot.observability.metrics import Metrics
from bot.observability.outbox_gauges import OutboxGauges
from bot.ops.monitor import OpsMonitor
from bot.ops.watch import DeliveryWatch
from bot.scheduler.executor import pages
from bot.scheduler.scheduler import JobScheduler
from tests.conftest import TEST_CONFIG
from tests.support import wait_for

WORKERS = 4


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def lateness(engine: sa.Engine, jobs: JobScheduler, *, at: datetime) -> float:
    """`opsbot_scheduled_jobs_overdue_seconds` in the EMF line of an ops monitor round at `at`."""
    config = parse_config(TEST_CONFIG)
    clock = ManualClock(at)
    lines: list[str] = []
    monitor = OpsMonitor(
        sessions=make_sessionmaker(engine),
        gauges=OutboxGauges(engine, clock=clock, cache_s=0.0),
        metrics=Metrics(),
        watch=DeliveryWatch(config=config),
        config=config,
        clock=clock,
        instance_id="test",
        is_leader=lambda: jobs.is_leader,
        heartbeat_s=15.0,
        emf_interval_s=60.0,
        emf_namespace="opsbot/test",
        emit=lines.append,
        jobs_queued_overdue_s=jobs.queued_overdue_s,
    )
    monitor.tick()
    [plain] = [line for line in map(json.loads, lines) if "target" not in line]
    return float(plain["opsbot_scheduled_jobs_overdue_seconds"])


def test_an_escalation_runs_while_every_watch_waits_on_aws_and_a_waiting_watch_is_late(
    engine: sa.Engine, release: threading.Event
) -> None:
    watching: list[int] = []
    escalated = threading.Event()

    def slow_watch(n: int) -> None:
        watching.append(n)
        release.wait(60)

    jobs = JobScheduler(engine, background=True, leader_interval_s=0.2)
    jobs.start({"deploys.watch": slow_watch, "incidents.escalate": lambda: escalated.set()})
    try:
        wait_for(lambda: jobs.is_leader)
        now = datetime.now(UTC)
        for n in range(WORKERS + 1):  # one more than the pool has workers
            jobs.schedule("deploys.watch", at=now, job_id=f"watch-{n}", n=n)
        wait_for(lambda: len(watching) == WORKERS)
        jobs.schedule("incidents.escalate", at=datetime.now(UTC), job_id="incident-1:escalate")

        assert escalated.wait(30)  # not behind the watches
        # The fifth watch has left the store and waits for a worker: five minutes on,
        # the ops monitor's lateness figure (the jobs-late alarm's) says so.
        assert len(watching) == WORKERS
        assert lateness(engine, jobs, at=datetime.now(UTC) + timedelta(minutes=5)) >= 300
    finally:
        release.set()
    wait_for(lambda: len(watching) == WORKERS + 1)
    wait_for(lambda: jobs.queued_overdue_s(datetime.now(UTC) + timedelta(minutes=5)) == 0)
    jobs.stop()


def test_the_jobs_that_page_are_the_ones_on_their_own_workers() -> None:
    # Named by the constants the domains store their jobs under, so a rename is seen.
    for name in (ESCALATE_JOB, REMIND_JOB, SILENCE_END_JOB, END_JOB):
        assert pages(name), name
    # Archiving a resolved incident's channel waits on Slack and pages nobody.
    for name in (ARCHIVE_CHANNEL_JOB, "deploys.watch", "flags.watch", "changes.look_at_ecs"):
        assert not pages(name), name
