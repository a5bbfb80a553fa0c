"""A rollout whose tasks keep crashing, with no circuit breaker to fail it.

Its tasks start and stop again (RunTask and StopTask on moto, started by the
ECS deployment, as ECS's own scheduler would); its counts keep changing, but it
gets no nearer its goal: it is reported stuck once nothing more runs than ever
before for `stuck_after_min`, its stopped tasks are still told in its thread,
and a forced deploy may take the environment over.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from moto.ecs.models import EC2ContainerServiceBackend

from bot.adapters.ecs import Rollout, ServiceState, StoppedTask
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.flows import UNREADABLE_SINCE
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.deploys.rollout import MAX_REPORTED_TASKS, Seen, assess, high_water
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.test_deploy_observability import denied, moto_answers, refuse
from tests.deploys.test_rollback import refused
from tests.deploys.test_watch import status_of, thread_texts, tick
from tests.deploys.world import World
from tests.support import wait_for

ALICE = Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2")


def task_starts(world: World) -> str:
    """One of the rollout's tasks starts and runs; its arn."""
    rollouts = world.rollouts
    primary = rollouts.primary("staging")
    [task] = rollouts.aws("ecs").run_task(
        cluster="staging",
        taskDefinition=primary["taskDefinition"],
        launchType="FARGATE",
        startedBy=primary["id"],
        group="service:api",
        networkConfiguration=rollouts.network,
    )["tasks"]
    primary.update(runningCount=1, pendingCount=0)
    return str(task["taskArn"])


def task_crashes(world: World, arn: str, reason: str) -> None:
    """The task stops; ECS counts it failed and starts another one (pending)."""
    world.rollouts.aws("ecs").stop_task(cluster="staging", task=arn, reason=reason)
    primary = world.rollouts.primary("staging")
    primary.update(
        runningCount=0, pendingCount=1, failedTasks=int(primary.get("failedTasks") or 0) + 1
    )


def test_a_rollout_whose_tasks_keep_crashing_is_stuck_stays_stuck_and_may_be_taken_over(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    accepted = submit(runtime, ALICE)
    world.rollouts.progress("staging", running=0, pending=1)
    tick(runtime, clock)
    first_run = clock.now() + timedelta(seconds=10)
    statuses = []
    # A task every two minutes runs for a minute, then crashes: for 24 minutes.
    for crash in range(12):
        arn = task_starts(world)
        for _ in range(6):
            tick(runtime, clock)
            statuses.append(status_of(runtime, accepted.deployment_id).status)
        task_crashes(world, arn, f"Essential container in task exited (crash {crash})")
        for _ in range(6):
            tick(runtime, clock)
            statuses.append(status_of(runtime, accepted.deployment_id).status)

    deployment = status_of(runtime, accepted.deployment_id)
    assert deployment.status == "stuck"
    # The first task that ran was the last step toward the goal: ten minutes later, stuck;
    # every crash after that leaves it stuck, not "moving again".
    assert deployment.stuck_at == first_run + timedelta(minutes=10)
    assert statuses[statuses.index("stuck") :] == ["stuck"] * (
        len(statuses) - statuses.index("stuck")
    )
    assert deployment.observed["failed"] == 12
    with runtime.sessions() as db:
        stuck = db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "deploy.stuck"))
        assert len(stuck.all()) == 1
    alert = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "has not moved" in m.text]
    )
    assert "(1/2 running, 0 pending, 5 failed)" in alert[0].text
    # Every crash is told in the thread, those after it was stuck too (earlier lines may
    # fold into "… N earlier" while the outbox catches up, so the count is the record's).
    wait_for(lambda: "(crash 11)" in "\n".join(thread_texts(releases, count=2)))
    assert deployment.observed["reported_count"] == 12

    # A stuck deployment is one a forced deploy may take over.
    bob = Request(app="api", env="staging", actor="U0BOB", tag="1.0.1")
    assert 'or add `--force "<reason>"` to take over.' in refused(runtime, bob)
    forced = submit(runtime, replace(bob, force_reason="1.0.2 crash-loops"))
    assert status_of(runtime, forced.deployment_id).status == "rolling_out"
    assert status_of(runtime, accepted.deployment_id).status == "superseded"


def test_a_rollout_that_runs_more_tasks_is_not_stuck_though_others_crash(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    accepted = submit(runtime, ALICE)
    world.rollouts.primary("staging")["desiredCount"] = 20
    for running in range(1, 16):  # one more task runs every minute; one crashes beside it
        arn = task_starts(world)
        task_crashes(world, arn, "Essential container in task exited")
        world.rollouts.progress("staging", running=running, pending=1)
        for _ in range(6):
            tick(runtime, clock)
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"


def test_stopped_tasks_that_cannot_be_read_leave_the_look_to_tell_the_rest(
    runtime: Runtime,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    accepted = submit(runtime, ALICE)
    world.rollouts.progress("staging", running=0, pending=1)
    tick(runtime, clock)
    task_crashes(world, task_starts(world), "CannotPullContainerError: pull access denied")
    world.rollouts.progress("staging", running=1, pending=0)
    with moto_answers(EC2ContainerServiceBackend, "list_tasks", refuse(denied("ecs:ListTasks"))):
        with caplog.at_level(logging.WARNING, logger="bot.deploys"):
            tick(runtime, clock)
        looked = status_of(runtime, accepted.deployment_id)
        assert looked.status == "rolling_out"
        assert looked.observed["running"] == 1  # the look was applied, not "unreadable"
        assert UNREADABLE_SINCE not in looked.observed
        [line] = [r for r in caplog.records if "stopped tasks" in r.getMessage()]
        assert line.levelno == logging.WARNING
        assert line.__dict__["deployment"] == accepted.deployment_id
        assert line.__dict__["aws_error"] == "AccessDeniedException"
        world.rollouts.complete("staging")
        tick(runtime, clock)
        assert status_of(runtime, accepted.deployment_id).status == "completed"


def test_a_stopped_task_read_that_fails_once_is_told_at_the_next_look(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    accepted = submit(runtime, ALICE)
    world.rollouts.progress("staging", running=0, pending=1)
    tick(runtime, clock)
    task_crashes(world, task_starts(world), "CannotPullContainerError: pull access denied")
    with moto_answers(EC2ContainerServiceBackend, "list_tasks", refuse(denied("ecs:ListTasks"))):
        tick(runtime, clock)
    tick(runtime, clock)
    deployment = status_of(runtime, accepted.deployment_id)
    assert deployment.observed["reported_count"] == 1
    wait_for(lambda: "pull access denied" in "\n".join(thread_texts(releases, count=2)))


# -- the stopped tasks remembered as reported: what ECS still lists, at most a few hundred --

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def service_state(*, failed: int) -> ServiceState:
    rollout = Rollout(
        id="ecs-svc/1",
        status="PRIMARY",
        task_definition="arn:aws:ecs:eu-west-1:1:task-definition/api-staging:2",
        rollout_state="IN_PROGRESS",
        reason=None,
        desired=1,
        running=0,
        pending=1,
        failed=failed,
        created_at=NOW,
        updated_at=NOW,
    )
    return ServiceState(
        arn="arn:aws:ecs:eu-west-1:1:service/staging/api",
        cluster="staging",
        name="api",
        task_definition=rollout.task_definition,
        desired=1,
        running=0,
        pending=1,
        deployments=(rollout,),
        events=(),
    )


def stopped(numbers: range) -> list[StoppedTask]:
    return [
        StoppedTask(
            arn=f"arn:aws:ecs:eu-west-1:1:task/staging/{n:032x}",
            reason="Essential container in task exited",
            stop_code="EssentialContainerExited",
            stopped_at=NOW,
            containers=(),
        )
        for n in numbers
    ]


def seen(reported: list[StoppedTask]) -> Seen:
    return Seen(
        ecs_deployment_id="ecs-svc/1",
        task_definition="arn:aws:ecs:eu-west-1:1:task-definition/api-staging:2",
        previous_task_definition=None,
        observed={
            "state": "IN_PROGRESS",
            "desired": 1,
            "running": 0,
            "pending": 1,
            "failed": len(reported),
            "reported_tasks": [t.arn for t in reported],
        },
        last_progress_at=NOW,
        is_stuck=False,
    )


def test_the_stopped_tasks_remembered_are_those_ecs_still_lists_and_a_few_hundred_at_most() -> None:
    before = seen(stopped(range(700)))
    # Tasks 0-299 went out of ECS's listing (about an hour after they stopped); 700-709 are new.
    verdict = assess(
        before,
        service_state(failed=710),
        stopped=stopped(range(300, 710)),
        now=NOW,
        stuck_after=timedelta(minutes=10),
    )
    assert [t.arn for t in verdict.new_stopped] == [t.arn for t in stopped(range(700, 710))]
    assert list(verdict.reported_tasks) == [t.arn for t in stopped(range(300, 710))]

    flood = assess(
        seen([]),
        service_state(failed=800),
        stopped=stopped(range(800)),
        now=NOW,
        stuck_after=timedelta(minutes=10),
    )
    assert len(flood.new_stopped) == 800
    assert list(flood.reported_tasks) == [t.arn for t in stopped(range(800))][-MAX_REPORTED_TASKS:]

    # A look that did not read the stopped tasks forgets none of those it may remember.
    unread = assess(
        seen(stopped(range(300))),
        service_state(failed=300),
        stopped=None,
        now=NOW,
        stuck_after=timedelta(minutes=10),
    )
    assert list(unread.reported_tasks) == [t.arn for t in stopped(range(300))]


def rollout_at(desired: int, running: int, *, ecs_id: str = "ecs-svc/1") -> ServiceState:
    state = service_state(failed=0)
    [rollout] = state.deployments
    moved = replace(rollout, id=ecs_id, desired=desired, running=running, pending=desired - running)
    return replace(state, desired=desired, running=running, deployments=(moved,))


def looks(steps: list[tuple[int, ServiceState]]) -> list[str]:
    """Each look's verdict, `observed` kept between looks as bot/deploys/flows.py `_apply` keeps it."""
    kinds, observed, ecs_id, progress_at, is_stuck = [], {}, "ecs-svc/1", NOW, False
    for minute, state in steps:
        now = NOW + timedelta(minutes=minute)
        before = Seen(
            ecs_deployment_id=ecs_id,
            task_definition="arn:aws:ecs:eu-west-1:1:task-definition/api-staging:2",
            previous_task_definition=None,
            observed=observed,
            last_progress_at=progress_at,
            is_stuck=is_stuck,
        )
        verdict = assess(before, state, stopped=[], now=now, stuck_after=timedelta(minutes=20))
        switched = verdict.ecs_deployment_id not in (None, ecs_id)
        observed = {
            **verdict.counts,
            "most_running": high_water(observed, verdict.counts, switched=switched),
        }
        ecs_id = verdict.ecs_deployment_id or ecs_id
        if verdict.kind == "progress":
            progress_at, is_stuck = now, False
        is_stuck = is_stuck or verdict.kind == "stuck"
        kinds.append(verdict.kind)
    return kinds


def test_a_new_goal_counts_the_tasks_coming_up_toward_it_as_progress_again() -> None:
    # Autoscaling during a healthy rollout: 6 of 6, scaled in to 3, out to 6 again, the
    # new tasks coming up slowly (a capacity provider adding instances).
    scaled = looks(
        [
            (1, rollout_at(6, 0)),
            (7, rollout_at(6, 6)),
            (9, rollout_at(3, 3)),
            (12, rollout_at(6, 3)),
            (17, rollout_at(6, 4)),
            (25, rollout_at(6, 5)),
            (34, rollout_at(6, 6)),
        ]
    )
    assert "stuck" not in scaled and scaled[-1] == "progress"
    # A fresh ECS deployment of the revision (an operator's --force-new-deployment).
    fresh = looks(
        [
            (1, rollout_at(4, 1)),
            (4, rollout_at(4, 3)),
            (6, rollout_at(4, 0, ecs_id="ecs-svc/2")),
            (14, rollout_at(4, 1, ecs_id="ecs-svc/2")),
            (22, rollout_at(4, 2, ecs_id="ecs-svc/2")),
            (30, rollout_at(4, 3, ecs_id="ecs-svc/2")),
        ]
    )
    assert "stuck" not in fresh
    # A task that runs and crashes again, the goal unchanged, is no progress.
    crashing = looks(
        [(1, rollout_at(1, 1)), *((m, rollout_at(1, (m // 2) % 2)) for m in range(2, 30, 2))]
    )
    assert "stuck" in crashing
