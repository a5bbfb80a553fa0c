"""Lock reminders and rollout watches lost with a crash (or their retries given up) come
back at the next start, from what the database keeps, due when they were due.

A crash mid-run loses a date job: APScheduler takes it out of the store when it
hands it to a worker. Here the job is taken out by hand, the runtime is stopped,
and a new one starts on the same database: its start-up steps put the job back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.deploys import locks
from bot.deploys import service as deploys
from bot.deploys.models import DeployLock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import T0
from tests.deploys.test_watch import leave_a_crashed_start, status_of, tick
from tests.deploys.world import World
from tests.support import wait_for

REMINDER_PREFIX = "deploy-lock-reminder-"


def start_up_step(runtime: Runtime, name: str) -> Callable[[Runtime], None]:
    """One of the steps every start runs, by name."""
    [step] = [hook for hook in runtime.on_start if hook.__name__ == name]
    return step


def reminder_jobs(runtime: Runtime) -> list[tuple[str, datetime | None]]:
    return sorted(
        (job_id, at)
        for job_id, at in runtime.scheduler.pending()
        if job_id.startswith(REMINDER_PREFIX)
    )


def lose_reminders(runtime: Runtime) -> None:
    """What a crash mid-run, or retries given up, leaves: no reminder job in the store."""
    jobs = reminder_jobs(runtime)
    assert jobs
    for job_id, _ in jobs:
        assert runtime.scheduler.cancel(job_id)


def manual_lock_id(runtime: Runtime, env: str) -> int:
    with runtime.sessions() as db:
        held = deploys.manual_lock(db, app="api", env=env)
        assert held is not None
        return held.id


def test_a_lost_lock_reminder_is_put_back_at_start_when_it_is_due(
    make_runtime: Callable[..., Runtime], clock: ManualClock, releases: SlackEmulator
) -> None:
    def reminders() -> list[str]:
        return [m.text for m in releases.all_messages() if m.channel == "U0ALICE"]

    first = make_runtime()
    locks.lock(first, app="api", env="prod", actor="U0ALICE", reason="load test")
    job_id = f"{REMINDER_PREFIX}{manual_lock_id(first, 'prod')}"
    lose_reminders(first)
    first.stop()

    clock.advance(minutes=30)
    second = make_runtime()  # lock_reminder_after_min: 120
    assert reminder_jobs(second) == [(job_id, T0 + timedelta(minutes=120))]
    clock.advance(minutes=89)
    assert second.scheduler.run_due(clock.now()) == []
    clock.advance(minutes=1)
    assert second.scheduler.run_due(clock.now()) == [job_id]
    [reminder] = wait_for(reminders)
    assert "You have held `api/prod` locked for 2 h 0 min" in reminder and "load test" in reminder

    # Lost again after that reminder, and overdue by the next start: due at once.
    lose_reminders(second)
    second.stop()
    clock.advance(minutes=90)  # lock_reminder_every_min: 60, so it was due 30 min ago
    third = make_runtime()
    assert reminder_jobs(third) == [(job_id, clock.now())]
    assert third.scheduler.run_due(clock.now()) == [job_id]
    wait_for(lambda: len(reminders()) == 2)
    assert "You have held `api/prod` locked for 3 h 30 min" in reminders()[1]
    assert reminder_jobs(third) == [(job_id, clock.now() + timedelta(minutes=60))]


def test_putting_lock_reminders_back_twice_leaves_one_job_per_lock(
    runtime: Runtime, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    locks.lock(runtime, app="api", env="staging", actor="U0ALICE", reason="migration")
    locks.lock(runtime, app="api", env="prod", actor="U0ALICE", reason="load test")
    clock.advance(minutes=10)
    locks.lock(runtime, app="api", env="prod", actor="U0ALICE", reason="load test, day 2")
    put_back = start_up_step(runtime, "reschedule_lock_reminders")
    put_back(runtime)
    with caplog.at_level(logging.INFO, logger="bot.deploys.jobs"):
        put_back(runtime)  # a second instance starting on the same database does the same
    assert "put back the reminder jobs of 2 manual deploy lock(s)" in caplog.messages

    due = T0 + timedelta(minutes=120)
    assert reminder_jobs(runtime) == sorted(
        [
            (f"{REMINDER_PREFIX}{manual_lock_id(runtime, 'staging')}", due),
            (f"{REMINDER_PREFIX}{manual_lock_id(runtime, 'prod')}", due),
        ]
    )
    locks.unlock(runtime, app="api", env="staging", actor="U0ALICE")
    locks.unlock(runtime, app="api", env="prod", actor="U0ALICE")
    put_back(runtime)  # no lock held: nothing more to put back
    assert len(reminder_jobs(runtime)) == 2  # each stops when it finds its lock gone
    clock.advance(minutes=120)
    assert len(runtime.scheduler.run_due(clock.now())) == 2
    assert reminder_jobs(runtime) == []


def test_a_lost_watch_is_put_back_at_start_and_follows_the_rollout_to_its_end(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    first = make_runtime()
    accepted = submit(first, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    world.rollouts.progress("staging", running=1, pending=1)
    assert len(tick(first, clock)) == 1  # a look at T0 + 10 s; the next is due 10 s later
    token = status_of(first, accepted.deployment_id).watch_job
    assert token is not None
    assert first.scheduler.pending() == [(token, T0 + timedelta(seconds=20))]
    assert first.scheduler.cancel(token)  # lost with a crash mid-run
    first.stop()

    world.rollouts.complete("staging")
    clock.advance(seconds=5)
    second = make_runtime()
    assert second.scheduler.pending() == [(token, T0 + timedelta(seconds=20))]
    assert tick(second, clock, 5) == [token]
    deployment = status_of(second, accepted.deployment_id)
    assert deployment.status == "completed"
    assert "2/2 running" in (deployment.outcome or "")
    with second.sessions() as db:
        assert db.scalars(sa.select(DeployLock)).all() == []
    assert second.scheduler.pending() == []  # the watch ended with the deployment


def test_a_start_that_died_unwatched_is_watched_after_the_next_start_and_settled(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    """The bot died before UpdateService, and before any watch job was stored."""
    first = make_runtime()
    crashed = leave_a_crashed_start(first, world, clock)
    assert crashed.watch_job is None and first.scheduler.pending() == []
    first.stop()

    clock.advance(minutes=2)  # past starting_grace_s (60 s) and its first look (10 s)
    second = make_runtime()
    token = status_of(second, crashed.id).watch_job
    assert token is not None
    assert second.scheduler.pending() == [(token, clock.now())]  # overdue: at once
    assert second.scheduler.run_due(clock.now()) == [token]
    settled = status_of(second, crashed.id)
    assert settled.status == "failed"
    assert "Interrupted before the service was updated" in (settled.outcome or "")
    with second.sessions() as db:
        assert db.scalars(sa.select(DeployLock)).all() == []


def test_putting_watches_back_twice_leaves_one_job_under_the_deployments_token(
    runtime: Runtime, world: World, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    token = status_of(runtime, accepted.deployment_id).watch_job
    put_back = start_up_step(runtime, "resume_deploy_watches")
    put_back(runtime)  # its watch was not lost: it is replaced, not doubled
    with caplog.at_level(logging.INFO, logger="bot.deploys.jobs"):
        put_back(runtime)  # a second instance starting on the same database does the same
    assert "put back the watch jobs of 1 deployment(s) in progress" in caplog.messages

    assert runtime.scheduler.pending() == [(token, T0 + timedelta(seconds=10))]
    assert status_of(runtime, accepted.deployment_id).watch_job == token
    world.rollouts.complete("staging")
    assert tick(runtime, clock) == [token]
    assert status_of(runtime, accepted.deployment_id).status == "completed"
    put_back(runtime)  # nothing in progress: nothing to put back
    assert runtime.scheduler.pending() == []
