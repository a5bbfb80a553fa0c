"""A job no instance would run is never lost in silence.

A schedule the job store refuses after a commit (the scheduler stopped, the
store down) is an ERROR line with the job's id, counted as given up; a stop
keeps the store open while the outbox's last sends finish, since a send may
schedule a job (an escalation re-armed). A stored job whose name this version
does not know (a newer release's, during a rolling deploy) stays in the store
for a leader that knows it; a waiting run the store refuses at stop is counted
as given up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.app import build_runtime
from bot.config import parse_config
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.scheduler.deferred import apply_after_commit, schedule_after_commit
from bot.scheduler.scheduler import JobScheduler
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.scheduler.tables import table_gone
from tests.scheduler.test_stop import stored, takes_no_more_work
from tests.support import wait_for

DEFERRED_LOG = "bot.scheduler.deferred"
SCHEDULER_LOG = "bot.scheduler.scheduler"
ESCALATE = "test.escalate"


def failures(metrics: Metrics, job: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "opsbot_scheduled_job_failures_total", {"job": job, "outcome": outcome}
    )
    return value or 0.0


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def stopped(engine: sa.Engine, metrics: Metrics) -> Iterator[JobScheduler]:
    """A scheduler that ran and stopped, as at the end of `Runtime.stop`."""
    scheduler = JobScheduler(engine, background=False, failures=metrics.scheduled_job_failures)
    scheduler.start({ESCALATE: lambda **_: None})
    scheduler.stop()
    yield scheduler


def test_a_job_scheduled_after_the_scheduler_stopped_is_an_error_and_counted_given_up(
    engine: sa.Engine,
    stopped: JobScheduler,
    metrics: Metrics,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions = make_sessionmaker(engine)
    apply_after_commit(sessions, stopped)
    due = datetime(2026, 11, 25, 10, 2, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger=DEFERRED_LOG), sessions() as db_session:
        schedule_after_commit(
            db_session, ESCALATE, at=due, job_id="incident-7:escalate", incident_id=7
        )
        db_session.commit()

    assert stored(engine) == []
    [said] = [r for r in caplog.records if r.name == DEFERRED_LOG]
    assert said.levelno == logging.ERROR
    assert (said.job, said.job_id) == (ESCALATE, "incident-7:escalate")  # type: ignore[attr-defined]
    assert "incident-7:escalate {'incident_id': 7}" in said.getMessage()
    assert failures(metrics, ESCALATE, "gave_up") == 1
    assert metrics.take_interval().jobs_given_up == 1  # the EMF line's count


@pytest.mark.timeout(60)
def test_a_job_scheduled_by_a_send_finishing_while_the_runtime_stops_is_stored(
    settings: Settings, slack: SlackEmulator, engine: sa.Engine
) -> None:
    # Long enough a request timeout that the send outlasts the stop's first steps.
    delivery: dict[str, Any] = {**TEST_CONFIG["delivery"], "lease_s": 30.0}
    config = parse_config({**TEST_CONFIG, "delivery": delivery | {"request_timeout_s": 10.0}})
    runtime = build_runtime(settings, config, run_jobs=False)
    runtime.jobs[ESCALATE] = lambda **_: None
    runtime.start()
    slack.faults.hang_next(1, seconds=4, calls=("chat.postMessage",))
    runtime.oncall.post(key="test:in-flight", channel="C0ALERTS", message={"text": "hello"})
    wait_for(lambda: runtime.outbox._in_flight)  # on the wire: the stop waits for it
    stopping = threading.Thread(target=runtime.stop, name="stopping", daemon=True)
    stopping.start()
    try:
        wait_for(runtime.outbox._stop.is_set)
        # What a send finishing now commits (a person's call went first: the
        # escalation is due again shortly), through the runtime's own sessions.
        due = (datetime.now(UTC) + timedelta(minutes=2)).replace(microsecond=0)
        with runtime.sessions() as db_session:
            schedule_after_commit(
                db_session, ESCALATE, at=due, job_id="incident-7:escalate", incident_id=7
            )
            db_session.commit()
    finally:
        stopping.join(30)
    assert not stopping.is_alive()
    assert stored(engine) == [("incident-7:escalate", due)]
    wait_for(lambda: slack.channel_messages("C0ALERTS"))  # and the send went out


def test_a_job_this_version_does_not_know_is_kept_for_a_leader_that_knows_it(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[dict[str, Any]] = []
    now = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    new_metrics, old_metrics = Metrics(), Metrics()
    # The new release's task stores a job of its own; the old release's task still leads.
    new = JobScheduler(engine, background=False, failures=new_metrics.scheduled_job_failures)
    new.start({"old.job": lambda **_: None, "new.job": lambda **kw: ran.append(kw)})
    old = JobScheduler(engine, background=False, failures=old_metrics.scheduled_job_failures)
    old.start({"old.job": lambda **_: None})
    try:
        new.schedule("new.job", at=now, job_id="new.job:1", incident_id=7)
        with caplog.at_level(logging.WARNING, logger=SCHEDULER_LOG):
            assert old.run_due(now) == ["new.job:1"]
        assert ran == []
        assert stored(engine) == [("new.job:1", now + timedelta(seconds=30))]
        assert failures(old_metrics, "unknown", "retried") == 1
        [said] = [r for r in caplog.records if r.name == SCHEDULER_LOG]
        assert said.levelno == logging.WARNING and "new.job:1" in said.getMessage()

        # The old task stops; the new one leads and runs it.
        old.stop()
        assert new.run_due(now + timedelta(seconds=30)) == ["new.job:1"]
        assert ran == [{"incident_id": 7}]
        assert stored(engine) == []
    finally:
        old.stop()
        new.stop()


@pytest.mark.timeout(60)
def test_a_waiting_run_the_store_refuses_at_stop_is_counted_given_up(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = Metrics()
    scheduler = JobScheduler(engine, leader_interval_s=0.2, failures=metrics.scheduled_job_failures)
    first_running, go_on = threading.Event(), threading.Event()

    def remind(*, round_no: int) -> None:
        if round_no == 1:
            first_running.set()
            go_on.wait(30)

    scheduler.start({"test.remind": remind})
    apscheduler = scheduler._scheduler
    assert apscheduler is not None
    pool = apscheduler._lookup_executor("default")._pool
    scheduler.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=1)
    wait_for(first_running.is_set)
    scheduler.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=2)
    wait_for(lambda: not scheduler.pending())  # the second waits for the first
    stopping = threading.Thread(target=scheduler.stop, name="stopping", daemon=True)
    stopping.start()
    wait_for(lambda: takes_no_more_work(pool))
    with (
        caplog.at_level(logging.WARNING, logger=SCHEDULER_LOG),
        table_gone(engine, "apscheduler_jobs"),
    ):
        go_on.set()  # the first ends; the waiting one cannot be stored again
        stopping.join(30)
    assert not stopping.is_alive()

    [said] = [r for r in caplog.records if r.name == SCHEDULER_LOG]
    assert said.levelno == logging.ERROR and "the job store refused" in said.getMessage()
    assert failures(metrics, "test.remind", "gave_up") == 1
    assert metrics.take_interval().jobs_given_up == 1
