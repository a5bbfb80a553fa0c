"""The leader takes a due job out of the shared store while other instances change it.

Another instance cancels a job id (an ack cancels its reminders) or schedules it
again for later (the next reminder) at any time, also in the instant the
leader takes the due run of that id out of the store. Neither may stop the
leader's loop (it keeps the lock, so no other instance would run any job), and
a newer schedule is never deleted in place of the run taken out. The statement
hooks below hold one instance at the exact point of the race while the other
acts, as the two would on two tasks. PostgreSQL only: SQLite takes its one
writer's lock at BEGIN, so the take-out and another instance's change cannot
interleave there.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter

from bot.scheduler.scheduler import TABLE, JobScheduler
from tests.support import wait_for

SCHEDULER_LOG = "bot.scheduler.scheduler"


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """The `engine` fixture on PostgreSQL only, its job store empty."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.delete(sa.table(TABLE)))
    engine.dispose()
    return postgres_url


@contextmanager
def before_statement(
    engine: sa.Engine,
    starts: str,
    act: Callable[[], None],
    *,
    thread: threading.Thread | None = None,
) -> Iterator[list[int]]:
    """Call `act` once, before the first statement that starts with `starts` (in `thread`).

    Removed on leaving, so leave only once the instances are stopped: SQLAlchemy
    may still be going through the hooks of a statement on another thread.
    """
    fired: list[int] = []

    def hook(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if fired or not statement.lstrip().upper().startswith(starts):
            return
        if thread is not None and threading.current_thread() is not thread:
            return
        fired.append(1)
        act()

    sa.event.listen(engine, "before_cursor_execute", hook)
    try:
        yield fired
    finally:
        sa.event.remove(engine, "before_cursor_execute", hook)


def elsewhere(act: Callable[[], object]) -> Callable[[], None]:
    """`act` on another thread (its own connection), waited for: another instance acting."""

    def run() -> None:
        other = threading.Thread(target=act, name="other-instance")
        other.start()
        other.join(10)

    return run


def pass_failures() -> Counter:
    return Counter("test_pass_failures", "passes that failed", registry=CollectorRegistry())


def counted(counter: Counter) -> float:
    [sample] = [s for m in counter.collect() for s in m.samples if s.name.endswith("_total")]
    return sample.value


@pytest.mark.timeout(60)
def test_a_job_cancelled_elsewhere_as_the_leader_takes_it_out_leaves_the_loop_running(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    jobs = {"test.remind": lambda *, what: ran.append(what)}
    follower = JobScheduler(engine, background=False)
    follower.start(jobs)
    follower.schedule("test.remind", at=datetime.now(UTC), job_id="remind", what="first")
    failures = pass_failures()
    leader = JobScheduler(engine, leader_interval_s=0.2, pass_failures=failures)
    cancel = elsewhere(lambda: follower.cancel("remind"))  # an ack on another task
    with (
        caplog.at_level(logging.WARNING, logger=SCHEDULER_LOG),
        before_statement(engine, "DELETE FROM APSCHEDULER_JOBS", cancel) as fired,
    ):
        try:
            leader.start(jobs)
            wait_for(lambda: fired)
            follower.schedule("test.remind", at=datetime.now(UTC), job_id="other", what="second")
            wait_for(lambda: "second" in ran)
        finally:
            leader.stop()
            follower.stop()

    assert ran == ["second"]  # the cancelled run does not run; the loop goes on
    assert [r.getMessage() for r in caplog.records if r.name == SCHEDULER_LOG] == []
    assert counted(failures) == 0


@pytest.mark.timeout(60)
def test_a_job_scheduled_again_elsewhere_as_the_leader_takes_it_out_keeps_its_new_schedule(
    engine: sa.Engine,
) -> None:
    ran: list[int] = []
    jobs = {"test.remind": lambda *, round_no: ran.append(round_no)}
    follower = JobScheduler(engine, background=False)  # schedules, never runs
    follower.start(jobs)
    follower.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=1)
    later = datetime.now(UTC) + timedelta(seconds=1)
    leader = JobScheduler(engine, leader_interval_s=0.2)
    again = elsewhere(
        lambda: follower.schedule("test.remind", at=later, job_id="remind", round_no=2)
    )
    with before_statement(engine, "DELETE FROM APSCHEDULER_JOBS", again) as fired:
        try:
            leader.start(jobs)
            wait_for(lambda: fired)
            wait_for(lambda: ran)
            wait_for(lambda: not follower.pending())
        finally:
            leader.stop()
            follower.stop()

    assert ran == [2]  # round 1 was replaced before it was taken out; round 2 stands


@pytest.mark.timeout(60)
def test_a_job_scheduled_again_as_the_leader_takes_out_its_due_run_is_stored(
    engine: sa.Engine,
) -> None:
    """APScheduler replaces a stored id by an insert, then an update on the conflict."""
    ran: list[int] = []
    jobs = {"test.remind": lambda *, round_no: ran.append(round_no)}
    follower = JobScheduler(engine, background=False)
    follower.start(jobs)
    follower.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=1)
    leader = JobScheduler(engine, leader_interval_s=0.2)

    def leader_runs_round_1() -> None:  # between the follower's insert and its update
        leader.start(jobs)
        wait_for(lambda: 1 in ran)

    later = datetime.now(UTC) + timedelta(seconds=1)
    main = threading.current_thread()
    with before_statement(
        engine, "UPDATE APSCHEDULER_JOBS", leader_runs_round_1, thread=main
    ) as fired:
        try:
            follower.schedule("test.remind", at=later, job_id="remind", round_no=2)
            assert fired
            wait_for(lambda: 2 in ran)
        finally:
            leader.stop()
            follower.stop()

    assert ran == [1, 2]


@pytest.mark.timeout(60)
def test_a_pass_over_the_store_that_fails_is_logged_counted_and_tried_again(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    jobs = {"test.remind": lambda *, what: ran.append(what)}
    failures = pass_failures()
    leader = JobScheduler(engine, leader_interval_s=0.2, pass_failures=failures)

    def connection_reset() -> None:
        raise ConnectionResetError("connection reset by peer")

    with (
        caplog.at_level(logging.WARNING, logger=SCHEDULER_LOG),
        before_statement(engine, "DELETE FROM APSCHEDULER_JOBS", connection_reset) as fired,
    ):
        try:
            leader.start(jobs)
            leader.schedule("test.remind", at=datetime.now(UTC), job_id="remind", what="late")
            wait_for(lambda: fired)
            wait_for(lambda: ran, timeout_s=20)
        finally:
            leader.stop()

    assert ran == ["late"]
    assert counted(failures) == 1
    [said] = [r for r in caplog.records if r.name == SCHEDULER_LOG]
    assert said.levelno == logging.ERROR and said.exc_info is not None
    assert said.getMessage() == (
        "a pass over the job store failed (ConnectionResetError); trying again within 5.0 s"
    )
    assert said.retry_s == 5.0  # type: ignore[attr-defined]


class _ThreadKilled(BaseException):
    """Stands for whatever ends a thread that `except Exception` does not stop."""


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_loop_thread_that_ended_is_started_again_while_this_instance_leads(
    engine: sa.Engine, caplog: pytest.LogCaptureFixture
) -> None:
    ran: list[str] = []
    jobs = {"test.remind": lambda *, what: ran.append(what)}
    failures = pass_failures()
    leader = JobScheduler(engine, leader_interval_s=0.2, pass_failures=failures)

    def kill() -> None:
        raise _ThreadKilled

    with (
        caplog.at_level(logging.ERROR, logger=SCHEDULER_LOG),
        before_statement(engine, "DELETE FROM APSCHEDULER_JOBS", kill) as fired,
    ):
        try:
            leader.start(jobs)
            leader.schedule("test.remind", at=datetime.now(UTC), job_id="remind", what="late")
            wait_for(lambda: fired)
            wait_for(lambda: ran, timeout_s=20)
            assert leader.is_leader
        finally:
            leader.stop()

    assert ran == ["late"]
    assert counted(failures) == 1
    [said] = [r for r in caplog.records if r.name == SCHEDULER_LOG]
    assert said.getMessage() == "the job scheduler's loop had stopped; starting it again"
