"""/rollback past flag rolls: a flag roll restarts a revision, it never is one to go back to.

`api/staging` keeps its flags as SSM parameters (the flag tests' world), so
`/flag on` restarts the service as a `flag-roll` row of the revision running.
"""

from __future__ import annotations

from dataclasses import replace

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.deploys.models import FLAG_ROLL, ROLLBACK, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.flags import flows as flag_flows
from bot.flags.requests import Change
from bot.runtime import Runtime
from tests.deploys.test_rollback import deploy_and_finish, refused
from tests.deploys.world import World
from tests.flags.conftest import (  # noqa: F401  # SSM flags on api/staging
    app_config,
    aws_settings,
    flag_world,
)

ROLLBACK_REQUEST = Request(app="api", env="staging", actor="U0BOB", kind=ROLLBACK)


def finish(runtime: Runtime, world: World, clock: ManualClock) -> None:
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())


def roll_flag(runtime: Runtime, world: World, clock: ManualClock) -> Deployment:
    change = Change(app="api", env="staging", actor="U0ALICE", verb="on", flag="apple_pay")
    assert "is now" in flag_flows.submit(runtime, change)
    finish(runtime, world, clock)
    with runtime.sessions() as db:
        roll = db.scalars(sa.select(Deployment).order_by(Deployment.id.desc()).limit(1)).one()
        assert (roll.kind, roll.status) == (FLAG_ROLL, "completed")
        return roll


def test_rollback_skips_a_flag_roll_for_the_deploy_before_it(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    first = deploy_and_finish(runtime, world, clock, "1.0.1")
    roll = roll_flag(runtime, world, clock)  # restarts 1.0.1's revision
    deploy_and_finish(runtime, world, clock, "1.0.2")

    accepted = submit(runtime, ROLLBACK_REQUEST)
    with runtime.sessions() as db:
        back = db.get(Deployment, accepted.deployment_id)
        assert back is not None
        assert (back.rollback_of, back.tag) == (first, "1.0.1"), (back.rollback_of, roll.id)
    assert "FF_" not in accepted.text


def test_rollback_after_a_rollback_and_a_flag_roll_goes_further_back_never_forward(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    deploy_and_finish(runtime, world, clock, "1.0.1")
    second = deploy_and_finish(runtime, world, clock, "1.0.2")
    submit(runtime, ROLLBACK_REQUEST)  # back to 1.0.1
    finish(runtime, world, clock)
    running = world.service_task_definition("staging")
    roll_flag(runtime, world, clock)  # restarts 1.0.1's revision again

    # 1.0.1 runs because a rollback restored #1: there is nothing before #1.
    assert refused(runtime, ROLLBACK_REQUEST) == (
        "No successful deployment of `api/staging` before the one running now (#1) is "
        "recorded: deploy a tag instead (`/deploy api staging &lt;tag&gt;`)."
    )
    assert world.service_task_definition("staging") == running
    with runtime.sessions() as db:
        forward = sa.select(Deployment).where(Deployment.rollback_of == second)
        assert db.scalars(forward).all() == []


def test_a_flag_roll_named_as_the_rollback_target_is_refused_for_the_deploy_before_it(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    first = deploy_and_finish(runtime, world, clock, "1.0.1")
    roll = roll_flag(runtime, world, clock)  # restarts 1.0.1's revision
    second = deploy_and_finish(runtime, world, clock, "1.0.2")
    running = world.service_task_definition("staging")

    assert refused(runtime, replace(ROLLBACK_REQUEST, rollback_of=roll.id)) == (
        f"Deployment #{roll.id} is a flag roll, not a version; roll back to the deployment "
        f"that put its revision in place: #{first} (`1.0.1`)."
    )
    assert world.service_task_definition("staging") == running

    # A deployment that did not complete: the ones listed instead are no flag rolls either.
    failed = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.0"))
    world.rollouts.fail("staging", reasons=["Essential container in task exited"])
    finish(runtime, world, clock)
    assert refused(runtime, replace(ROLLBACK_REQUEST, rollback_of=failed.deployment_id)) == (
        f"Deployment #{failed.deployment_id} did not complete (failed); roll back to one that "
        f"did: #{second} (`1.0.2`), #{first} (`1.0.1`)."
    )
