"""A "starting" deployment that cannot be settled, and deployments nobody's channel follows.

A flag roll the bot stopped in the middle of is settled from its change's store
and ECS (bot/deploys/restarts.py). While its store cannot be read, it holds the
environment: past its grace and `stuck_after_min` it is stuck, said in its
channel, and a forced deploy may take the environment over.

A deploy asked through the CLI, of an environment without a release channel,
has no channel to be read in: how it ends is told to the Slack user the CLI
acts as.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters import ecs
from bot.apps.registry import get_target_or_raise
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.errors import DeployError, DeployRefused
from bot.deploys.jobs import resume_watches
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.deploys.restarts import ChangeKind, register_change_kind, start_flag_roll
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES, deploy_config
from tests.deploys.test_deploy_observability import counted
from tests.deploys.test_start_races import deployments
from tests.deploys.test_watch import leave_a_crashed_start, status_of, tick
from tests.deploys.world import World
from tests.support import wait_for


def _inspect(services: Any, change: dict[str, Any]) -> Any:
    raise DeployError("AWS failed to read the parameter: ThrottlingException")


UNREADABLE = register_change_kind(
    ChangeKind(name="test-unreadable-store", inspect=_inspect, settled=lambda *a: None)
)


class Died(BaseException):
    """The process dying mid-roll (nothing in start_flag_roll handles it)."""


def crash_a_flag_roll(runtime: Runtime) -> int:
    def write() -> None:
        raise Died()

    with pytest.raises(Died):
        start_flag_roll(
            runtime,
            target=get_target_or_raise(runtime.config, app="api", env="staging"),
            actor="U0ALICE",
            what="FF_TEST=true",
            channel=RELEASES,
            approved_by=[],
            change=write,
            record={"kind": UNREADABLE.name, "parameter": "/test/FF_TEST"},
        )
    return max(d.id for d in deployments(runtime))


def test_a_crashed_flag_roll_whose_store_stays_unreadable_is_stuck_and_can_be_taken_over(
    runtime: Runtime,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    value = counted(runtime)
    roll_id = crash_a_flag_roll(runtime)

    # Past its grace (60 s), not yet `stuck_after_min` (10 min) past it: it may settle yet.
    for _ in range(6):
        tick(runtime, clock, seconds=100)
    assert status_of(runtime, roll_id).status == "starting"
    with pytest.raises(DeployRefused, match="is starting"):
        submit(
            runtime,
            Request(app="api", env="staging", actor="U0BOB", tag="1.0.2", force_reason="incident"),
        )

    with caplog.at_level(logging.ERROR, logger="bot.deploys"):
        for _ in range(2):
            tick(runtime, clock, seconds=100)
    roll = status_of(runtime, roll_id)
    assert roll.status == "stuck"
    assert value("flag_roll", "stuck") == 1
    [line] = [r for r in caplog.records if "marked stuck" in r.getMessage()]
    assert (line.deployment, line.app, line.env) == (roll_id, "api", "staging")  # type: ignore[attr-defined]
    with runtime.sessions() as db:
        [stuck] = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "flag-roll.stuck")
        ).all()
    assert "ThrottlingException" in stuck.detail["reason"]
    alert = wait_for(
        lambda: next(
            (m for m in releases.channel_messages(RELEASES) if "cannot tell" in m.text), None
        )
    )
    assert f"deployment #{roll_id}" in alert.text
    assert '--force "&lt;reason&gt;"' in alert.text or '--force "<reason>"' in alert.text

    # More looks neither settle it nor alert again.
    for _ in range(3):
        tick(runtime, clock, seconds=100)
    assert status_of(runtime, roll_id).status == "stuck"
    assert value("flag_roll", "stuck") == 1

    # Without --force: refused, and told how to take over.
    with pytest.raises(DeployRefused, match="--force"):
        submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.2"))
    accepted = submit(
        runtime,
        Request(app="api", env="staging", actor="U0BOB", tag="1.0.2", force_reason="incident"),
    )
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
    roll = status_of(runtime, roll_id)
    assert roll.status == "superseded"
    assert "taken over by a forced deploy" in (roll.outcome or "")


def test_a_cli_deploy_without_a_release_channel_tells_its_actor_how_it_ended(
    make_runtime: Any, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    config = deploy_config()
    del config["apps"]["api"]["environments"]["staging"]["release_channel"]
    runtime = make_runtime(parse_config(config))
    accepted = submit(
        runtime,
        Request(
            app="api", env="staging", actor="U0ALICE", tag="1.0.2", cli_identity="github:octocat"
        ),
    )
    assert status_of(runtime, accepted.deployment_id).channel is None
    world.rollouts.fail("staging", reasons=["Essential container in task exited"])
    for _ in range(3):
        tick(runtime, clock, seconds=10)
    assert status_of(runtime, accepted.deployment_id).status == "failed"
    [told] = wait_for(lambda: releases.channel_messages("U0ALICE"))
    assert told.text.startswith(":x: Deploy failed:")
    assert f"(#{accepted.deployment_id})" in told.text
    assert "circuit breaker" in told.text
    assert "Essential container in task exited" in told.text


def test_a_cli_deploy_without_a_release_channel_tells_its_actor_it_is_stuck_then_done(
    make_runtime: Any, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    config = deploy_config()
    del config["apps"]["api"]["environments"]["staging"]["release_channel"]
    runtime = make_runtime(parse_config(config))
    accepted = submit(
        runtime,
        Request(
            app="api", env="staging", actor="U0ALICE", tag="1.0.2", cli_identity="github:octocat"
        ),
    )
    world.rollouts.progress("staging", running=0, pending=1)
    for _ in range(70):  # more than stuck_after_min (10 min) without moving
        tick(runtime, clock, seconds=10)
    assert status_of(runtime, accepted.deployment_id).status == "stuck"
    [stuck] = wait_for(lambda: releases.channel_messages("U0ALICE"))
    assert "has not moved" in stuck.text
    world.rollouts.complete("staging")
    tick(runtime, clock, seconds=10)
    assert status_of(runtime, accepted.deployment_id).status == "completed"
    done = wait_for(lambda: releases.channel_messages("U0ALICE")[1:])
    assert done[0].text.startswith(":white_check_mark: Deployed")


def test_a_crashed_start_without_a_channel_tells_its_actor_it_was_recovered_and_how_it_ended(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    client = world.aws("ecs")
    current = ecs.describe_task_definition(client, arn=world.task_definitions["staging"])
    registered = ecs.register_with_image(
        client, current, container="app", image=world.image("1.0.1")
    )
    crashed = leave_a_crashed_start(runtime, world, clock)  # by U0BOB, recorded with no channel
    assert crashed.channel is None
    ecs.update_service(client, cluster="staging", service="api", task_definition=registered.arn)

    resume_watches(runtime)  # as the next start of the bot does
    for _ in range(7):  # past its grace (60 s): its watch settles it
        tick(runtime, clock, seconds=10)
    assert status_of(runtime, crashed.id).status == "rolling_out"
    [recovered] = wait_for(lambda: releases.channel_messages("U0BOB"))
    assert "Interrupted (the bot stopped), but the service had been updated" in recovered.text
    world.rollouts.complete("staging")
    tick(runtime, clock, seconds=10)
    assert status_of(runtime, crashed.id).status == "completed"
    done = wait_for(lambda: releases.channel_messages("U0BOB")[1:])
    assert done[0].text.startswith(":white_check_mark: Deployed")


def test_one_failed_look_after_a_long_pause_of_the_watch_is_no_verdict(
    runtime: Runtime, clock: ManualClock
) -> None:
    """The ten minutes run from the first look that could not settle it: after opsbot
    was down longer than that, one failed read does not open the environment to a
    takeover."""
    roll_id = crash_a_flag_roll(runtime)
    clock.advance(minutes=12)  # nobody looked meanwhile
    tick(runtime, clock, seconds=1)  # the first look: its store cannot be read
    assert status_of(runtime, roll_id).status == "starting"
    for _ in range(6):
        tick(runtime, clock, seconds=100)
    assert status_of(runtime, roll_id).status == "stuck"
