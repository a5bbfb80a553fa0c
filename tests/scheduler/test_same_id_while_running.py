"""A job due while its id is still running: it runs after that run, never skipped.

APScheduler runs one instance of a job id at a time and skips a due run whose id
is busy; a date job, having no next run, is then deleted from the store. Jobs
schedule their own id while they run (a reminder its next one, a user's action
the job already going), so a skip would lose the later run for good.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.scheduler.scheduler import JobScheduler
from tests.scheduler.test_stop import stored, takes_no_more_work
from tests.support import wait_for


@pytest.mark.timeout(60)
def test_a_run_due_while_its_id_runs_goes_after_it_with_its_newest_arguments(
    engine: sa.Engine,
) -> None:
    scheduler = JobScheduler(engine, leader_interval_s=0.2)
    first_running, go_on = threading.Event(), threading.Event()
    ran: list[int] = []

    def remind(*, round_no: int) -> None:
        if round_no == 1:
            first_running.set()
            go_on.wait(30)
        ran.append(round_no)

    scheduler.start({"test.remind": remind})
    try:
        scheduler.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=1)
        wait_for(first_running.is_set)
        scheduler.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=2)
        scheduler.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=3)
        # Both later runs are taken from the store while the first still runs.
        wait_for(lambda: not scheduler.pending())
        go_on.set()
        wait_for(lambda: len(ran) == 2)
    finally:
        go_on.set()
        scheduler.stop()

    assert ran == [1, 3]  # one at a time; the newest schedule of the id stands


@pytest.mark.timeout(60)
def test_a_run_still_waiting_when_the_scheduler_stops_is_stored_for_the_next_leader(
    engine: sa.Engine,
) -> None:
    scheduler = JobScheduler(engine, leader_interval_s=0.2)
    first_running, go_on = threading.Event(), threading.Event()
    ran: list[int] = []

    def remind(*, round_no: int) -> None:
        if round_no == 1:
            first_running.set()
            go_on.wait(30)
        ran.append(round_no)

    scheduler.start({"test.remind": remind})
    apscheduler = scheduler._scheduler
    assert apscheduler is not None
    pool = apscheduler._lookup_executor("default")._pool
    due = datetime.now(UTC)
    scheduler.schedule("test.remind", at=datetime.now(UTC), job_id="remind", round_no=1)
    wait_for(first_running.is_set)
    scheduler.schedule("test.remind", at=due, job_id="remind", round_no=2)
    wait_for(lambda: not scheduler.pending())
    stopping = threading.Thread(target=scheduler.stop, name="stopping", daemon=True)
    stopping.start()
    wait_for(lambda: takes_no_more_work(pool))
    go_on.set()
    stopping.join()

    assert ran == [1]
    assert stored(engine) == [("remind", due)]
