"""Watching a rollout: progress, the circuit breaker, stuck deployments, restarts, crashes.

moto never moves an ECS deployment: `world.rollouts` (sandbox/ecs.py)
plays ECS's part on moto's backend state. UpdateService starts a new PRIMARY
deployment; `progress` and `complete` set its counts and rolloutState;
`fail` starts and stops real moto tasks (RunTask with startedBy = the
deployment id, StopTask with ECS's reason), marks the deployment FAILED
("ECS deployment circuit breaker: tasks failed to start.") and starts the
rollback deployment of the previous revision, as the circuit breaker does.
The bot sees all of it only through DescribeServices, ListTasks and
DescribeTasks.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.adapters import ecs
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import service
from bot.deploys.models import DeployLock, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES, T0
from tests.deploys.world import World
from tests.support import wait_for


def status_of(runtime: Runtime, deployment_id: int | None) -> Deployment:
    assert deployment_id is not None
    with runtime.sessions() as db:
        found = db.get(Deployment, deployment_id)
        assert found is not None
        return found


def tick(runtime: Runtime, clock: ManualClock, seconds: float = 10) -> list[str]:
    clock.advance(seconds=seconds)
    return runtime.scheduler.run_due(clock.now())


def thread_texts(slack: SlackEmulator, *, count: int) -> list[str]:
    [parent] = wait_for(lambda: slack.channel_messages(RELEASES)[:1])
    replies = wait_for(
        lambda: (
            len(slack.thread(RELEASES, parent.ts)) >= count and slack.thread(RELEASES, parent.ts)
        )
    )
    return [m.text for m in replies]


def leave_a_crashed_start(runtime: Runtime, world: World, clock: ManualClock) -> Deployment:
    """What `start` leaves behind when the bot dies before its second transaction:
    the deploy lock and a "starting" deployment (recorded here as `start` records them)."""
    with runtime.sessions() as db:
        crashed = service.create(
            db,
            now=clock.now(),
            app="api",
            env="staging",
            kind="deploy",
            actor="U0BOB",
            tag="1.0.1",
            image=world.image("1.0.1"),
            digest=world.digests["1.0.1"],
            previous_task_definition=world.task_definitions["staging"],
        )
        service.take_lock(
            db,
            app="api",
            env="staging",
            kind="deploy",
            holder="U0BOB",
            deployment_id=crashed.id,
            now=clock.now(),
        )
        db.commit()
        return crashed


def test_circuit_breaker_failure_reports_stopped_tasks_and_frees_the_lock(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    previous = world.task_definitions["staging"]
    world.rollouts.fail(
        "staging",
        reasons=[
            "Essential container in task exited",
            "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
        ],
    )
    assert len(tick(runtime, clock)) == 1

    deployment = status_of(runtime, accepted.deployment_id)
    assert deployment.status == "failed"
    assert (deployment.outcome or "").startswith(
        "Failed after 10 s: ECS deployment circuit breaker: tasks failed to start; "
        "ECS rolled back to `api-staging:1`."
    )
    assert "stopped: Essential container in task exited" in (deployment.outcome or "")
    assert "CannotPullContainerError" in (deployment.outcome or "")
    assert world.service_task_definition("staging") == previous
    with runtime.sessions() as db:
        assert db.scalars(sa.select(DeployLock)).all() == []
        finish = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "deploy.finish")
        ).one()
        assert finish.outcome == "failed"
    texts = thread_texts(releases, count=2)
    assert any("Deploy failed" in t and "Essential container in task exited" in t for t in texts)
    wait_for(lambda: "Deploy failed" in releases.channel_messages(RELEASES)[0].text)
    assert tick(runtime, clock, 60) == []  # the watch ended with the deployment

    # The environment is free again.
    submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.1"))


def test_no_progress_marks_it_stuck_alerts_the_channel_and_keeps_watching(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    world.rollouts.progress("staging", running=1, pending=1)
    tick(runtime, clock)
    for _ in range(70):  # ten minutes of nothing moving, one look every 10 s
        tick(runtime, clock)
        if status_of(runtime, accepted.deployment_id).status == "stuck":
            break
    deployment = status_of(runtime, accepted.deployment_id)
    assert deployment.status == "stuck"
    # The last change was seen at the first look (T0 + 10 s); ten minutes later it is stuck.
    assert deployment.stuck_at == T0 + timedelta(seconds=610)
    alert = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "has not moved for" in m.text]
    )
    assert "<@U0ALICE>" in alert[0].text and "1/2 running, 1 pending" in alert[0].text

    world.rollouts.progress("staging", running=2, pending=0)
    tick(runtime, clock)
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, accepted.deployment_id).status == "completed"
    with runtime.sessions() as db:
        actions = [a.action for a in db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id))]
        assert actions == ["deploy.start", "deploy.stuck", "deploy.finish"]


def test_a_restart_resumes_the_watch(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    first = make_runtime()
    accepted = submit(first, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    world.rollouts.progress("staging", running=1, pending=1)
    tick(first, clock)
    assert status_of(first, accepted.deployment_id).status == "rolling_out"
    first.stop()  # the bot goes away mid-rollout; its watch job stays in the database

    world.rollouts.complete("staging")
    clock.advance(minutes=3)
    second = make_runtime()
    assert [job_id for job_id, _ in second.scheduler.pending()] == [
        status_of(second, accepted.deployment_id).watch_job
    ]
    assert len(second.scheduler.run_due(clock.now())) == 1
    deployment = status_of(second, accepted.deployment_id)
    assert deployment.status == "completed"
    assert "2/2 running" in (deployment.outcome or "")
    texts = thread_texts(releases, count=3)
    assert any("Completed in" in t for t in texts)


def test_a_crash_before_the_service_update_is_recovered_when_someone_deploys(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """The bot died after taking the lock and before UpdateService: ECS never heard of it."""
    crashed = leave_a_crashed_start(runtime, world, clock)

    request = Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2")
    try:
        submit(runtime, request)
    except Exception as exc:
        assert "is busy: deployment #1" in str(exc) and "is starting" in str(exc)
    else:
        raise AssertionError("deployed over a deployment that may still be starting")

    clock.advance(seconds=61)  # past starting_grace_s: the holder is looked at
    accepted = submit(runtime, request)
    assert status_of(runtime, crashed.id).status == "failed"
    assert "Interrupted before the service was updated" in (
        status_of(runtime, crashed.id).outcome or ""
    )
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
    with runtime.sessions() as db:
        recovered = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "deploy.recover")
        ).one()
        assert recovered.detail["found"] == "the service was never updated: marked failed"


def test_a_crash_after_the_service_update_is_adopted_and_watched(
    runtime: Runtime, world: World, clock: ManualClock, aws: Callable[[str], object]
) -> None:
    """The bot died right after UpdateService: ECS rolls the new revision out while
    the deployment is still recorded as "starting" and has no watch job. The new
    revision and the update are made here through the ECS API, as the bot made them."""
    client = world.aws("ecs")
    current = ecs.describe_task_definition(client, arn=world.task_definitions["staging"])
    registered = ecs.register_with_image(
        client, current, container="app", image=world.image("1.0.1")
    )
    crashed = leave_a_crashed_start(runtime, world, clock)
    ecs.update_service(client, cluster="staging", service="api", task_definition=registered.arn)

    clock.advance(seconds=61)
    request = Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2")
    try:
        submit(runtime, request)
    except Exception as exc:
        assert "is busy: deployment #1" in str(exc) and "is rolling out" in str(exc)
    else:
        raise AssertionError("deployed over a rollout in progress")
    adopted = status_of(runtime, crashed.id)
    assert adopted.status == "rolling_out"
    assert adopted.task_definition == registered.arn
    assert adopted.ecs_deployment_id == world.rollouts.primary("staging")["id"]

    world.rollouts.complete("staging")
    assert len(tick(runtime, clock)) == 1  # the watch the recovery scheduled
    assert status_of(runtime, crashed.id).status == "completed"
    submit(runtime, request)
