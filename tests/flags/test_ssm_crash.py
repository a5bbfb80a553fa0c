"""A flag roll the bot stopped in the middle of is settled by what really happened.

A flag roll restarts the revision that already runs, so "the service runs the
roll's revision" is always true and says nothing. The process dies here where
it talks to AWS: a botocore event hook on the dying runtime's own client
raises a BaseException (nothing in opsbot catches one, as nothing runs after
SIGKILL) before or after the real call reaches moto. Another runtime, the
process that comes next, then finds the roll "starting" past its grace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import service as deploys
from bot.deploys.models import LOCK_DEPLOY, Deployment
from bot.flags import flows
from bot.flags.requests import Change
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.world import World
from tests.flags.conftest import RELEASES, FlagWorld
from tests.support import wait_for


class ProcessDied(BaseException):
    """The process stops here: no `except Exception` of the bot runs."""


def die_at(runtime: Runtime, service: str, event: str) -> None:
    """Kill `runtime` at a botocore event of its `service` client, e.g. before-call.ssm.X."""

    def die(**_: Any) -> None:
        raise ProcessDied(event)

    runtime.aws.get(service).meta.events.register(event, die)


def crash_a_roll(runtime: Runtime, service: str, event: str) -> Deployment:
    """`/flag off new_checkout_flow` on api/staging, by a process that dies at `event`."""
    die_at(runtime, service, event)
    with pytest.raises(ProcessDied):
        flows.submit(
            runtime,
            Change(app="api", env="staging", actor="U0ALICE", verb="off", flag="new_checkout_flow"),
        )
    with runtime.sessions() as db:
        [roll] = db.scalars(sa.select(Deployment))
        assert roll.status == "starting"
        return roll


def after_the_crash(
    make_runtime: Callable[..., Runtime], clock: ManualClock, roll: Deployment
) -> Deployment:
    """The next process: past starting_grace_s, the roll's watch job settles it."""
    runtime = make_runtime()
    clock.advance(seconds=61)
    assert any(
        job.startswith(f"deploy-watch-{roll.id}-") for job in runtime.scheduler.run_due(clock.now())
    )
    with runtime.sessions() as db:
        found = db.get(Deployment, roll.id)
        assert found is not None
        return found


def audit(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        return list(
            db.scalars(
                sa.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
            )
        )


def said(slack: SlackEmulator, channel: str, containing: str) -> str:
    return str(
        wait_for(
            lambda: next(
                (
                    m.text
                    for m in slack.all_messages()
                    if m.channel == channel and containing in m.text
                ),
                None,
            )
        )
    )


def lock_is_free(runtime: Runtime) -> bool:
    with runtime.sessions() as db:
        return deploys.get_lock(db, app="api", env="staging", kind=LOCK_DEPLOY) is None


def test_a_crash_before_the_flag_is_written_is_not_reported_restarted(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    roll = crash_a_roll(runtime, "ssm", "before-call.ssm.PutParameter")
    rollout_before = world.rollouts.primary("staging")["id"]

    settled = after_the_crash(make_runtime, clock, roll)
    assert settled.status == "failed"
    state = "`NEW_CHECKOUT_FLOW` of `api/staging` is *true* in SSM (parameter version 1)"
    assert settled.outcome == (
        f"Interrupted before the flag was written (the bot stopped): {state}. "
        "Nothing changed: ask again."
    )
    assert flag_world.ssm_value("NEW_CHECKOUT_FLOW") == "true"
    assert world.rollouts.primary("staging")["id"] == rollout_before  # nothing restarted
    assert lock_is_free(runtime)
    assert "Restart failed" in said(releases, RELEASES, state)  # the thread
    assert f"(#{roll.id})" in said(releases, "U0ALICE", state)  # the person who asked
    [change] = audit(runtime, "flag.change")
    assert (change.outcome, change.actor) == ("failed", "U0ALICE")
    assert change.detail["parameter_version"] is None and change.detail["interrupted"] is True
    [recover] = audit(runtime, "flag-roll.recover")
    assert recover.detail["found"] == "the flag was never written: marked failed"
    assert recover.detail["flag"]["value"] == "true"
    assert [e.outcome for e in audit(runtime, "flag-roll.finish")] == ["failed"]


def test_a_crash_between_the_write_and_the_restart_says_the_tasks_have_the_old_value(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    roll = crash_a_roll(runtime, "ecs", "before-call.ecs.UpdateService")
    assert flag_world.ssm_value("NEW_CHECKOUT_FLOW") == "false"

    settled = after_the_crash(make_runtime, clock, roll)
    assert settled.status == "failed"
    assert settled.outcome == (
        "Interrupted after the flag was written (the bot stopped): `NEW_CHECKOUT_FLOW` of "
        "`api/staging` is *false* in SSM (parameter version 2), but the service was not "
        "restarted: running tasks keep the old value until they are replaced."
    )
    assert lock_is_free(runtime)
    assert "keep the old value" in said(releases, "U0ALICE", "Restart failed")
    [change] = audit(runtime, "flag.change")
    assert change.outcome == "failed" and change.detail["parameter_version"] == 2


def test_a_crash_after_the_restart_began_is_followed_to_its_end(
    runtime: Runtime,
    make_runtime: Callable[..., Runtime],
    flag_world: FlagWorld,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    rollout_before = world.rollouts.primary("staging")["id"]
    roll = crash_a_roll(runtime, "ecs", "after-call.ecs.UpdateService")
    restart = world.rollouts.primary("staging")["id"]
    assert restart != rollout_before

    settled = after_the_crash(make_runtime, clock, roll)
    assert (settled.status, settled.ecs_deployment_id) == ("rolling_out", restart)
    assert "restarts its tasks. Watching it." in said(releases, "U0ALICE", "Restarting")
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    make_runtime().scheduler.run_due(clock.now())
    with runtime.sessions() as db:
        done = db.get(Deployment, roll.id)
        assert done is not None and done.status == "completed"
    [change] = audit(runtime, "flag.change")
    assert change.outcome == "ok"
    assert change.detail["parameter_version"] == 2 and change.detail["deployment"] == roll.id
    # `/flag list` credits the change to the person who asked, as after any roll.
    text = flows.list_flags(runtime, app="api", env="staging")
    assert "`NEW_CHECKOUT_FLOW` *false* · last changed by <@U0ALICE>" in text
