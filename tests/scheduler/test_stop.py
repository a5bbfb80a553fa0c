"""Stopping the scheduler while a job runs: the stop ends, and what the job stored stays stored.

Jobs schedule from their own thread: the handoff its next day, the deploy watch
its next look, the lock reminder its next reminder. A rolling deploy stops the
old task while such a job runs; if the stop never returned, ECS would kill the
task (its outbox unflushed) and the job's next run would be lost.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from bot.observability.metrics import Metrics
from bot.scheduler.scheduler import JobScheduler
from tests.support import wait_for

LATER = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def takes_no_more_work(pool: Executor) -> bool:
    """True once `pool` is shut down: stop() is then waiting for the jobs it runs."""
    try:
        pool.submit(int)
    except RuntimeError:
        return True
    return False


def stored(engine: sa.Engine) -> list[tuple[str, datetime | None]]:
    """The jobs in the store, as another instance starting now would find them."""
    other = JobScheduler(engine, background=False)
    other.start({})
    try:
        return sorted(other.pending())
    finally:
        other.stop()


@pytest.mark.timeout(60)  # the guard: before the fix, stop() never returned
def test_a_job_scheduling_and_cancelling_while_the_scheduler_stops_is_stored_and_stop_ends(
    engine: sa.Engine,
) -> None:
    scheduler = JobScheduler(engine, leader_interval_s=0.2)
    running, go_on = threading.Event(), threading.Event()
    done: list[str] = []

    def hand_over(*, day: int) -> None:
        """Like the handoff or a deploy watch: schedule the next run, drop an older one."""
        running.set()
        go_on.wait(30)
        scheduler.schedule("test.hand_over", at=LATER, job_id="hand-over-next", day=day + 1)
        done.append("scheduled")
        assert scheduler.cancel("hand-over-stale")
        done.append("cancelled")

    scheduler.start({"test.hand_over": hand_over})
    apscheduler = scheduler._scheduler
    assert apscheduler is not None
    pool = apscheduler._lookup_executor("default")._pool  # what stop() waits on
    scheduler.schedule("test.hand_over", at=LATER, job_id="hand-over-stale", day=0)
    scheduler.schedule("test.hand_over", at=datetime.now(UTC), job_id="hand-over", day=1)
    wait_for(running.is_set)
    stopping = threading.Thread(target=scheduler.stop, name="stopping", daemon=True)
    stopping.start()
    wait_for(lambda: takes_no_more_work(pool))
    go_on.set()  # the job schedules now, while stop() waits for it to end
    stopping.join()

    assert done == ["scheduled", "cancelled"]
    assert stored(engine) == [("hand-over-next", LATER)]


@pytest.mark.timeout(60)
def test_a_job_failing_while_the_scheduler_stops_is_retried_from_the_store_and_stop_ends(
    engine: sa.Engine,
) -> None:
    metrics = Metrics()
    scheduler = JobScheduler(engine, leader_interval_s=0.2, failures=metrics.scheduled_job_failures)
    running, go_on = threading.Event(), threading.Event()

    def fails_late(*, report_id: int) -> None:
        running.set()
        go_on.wait(30)
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM no_such_table")

    scheduler.start({"test.fails_late": fails_late})
    apscheduler = scheduler._scheduler
    assert apscheduler is not None
    pool = apscheduler._lookup_executor("default")._pool
    scheduler.schedule("test.fails_late", at=datetime.now(UTC), job_id="late", report_id=3)
    wait_for(running.is_set)
    stopping = threading.Thread(target=scheduler.stop, name="stopping", daemon=True)
    stopping.start()
    wait_for(lambda: takes_no_more_work(pool))
    go_on.set()  # fails now, while stop() waits for it to end
    stopping.join()

    assert [job_id for job_id, _ in stored(engine)] == ["late"]  # the next leader tries again
    assert failures(metrics, "test.fails_late", "retried") == 1
    assert failures(metrics, "test.fails_late", "gave_up") == 0


def failures(metrics: Metrics, job: str, outcome: str) -> float | None:
    return metrics.registry.get_sample_value(
        "opsbot_scheduled_job_failures_total", {"job": job, "outcome": outcome}
    )
