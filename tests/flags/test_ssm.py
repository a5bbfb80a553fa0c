"""/flag on SSM parameters (api/staging): write, restart under the deploy lock, watch.

moto covers SSM fully. The restart is a forced new ECS deployment; moto never
runs one, so `world.rollouts` (sandbox/ecs_rollouts.py) plays ECS's part
on moto's own state, as in the deploy tests; the bot sees it only through
DescribeServices.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import service as deploys
from bot.deploys.models import COMPLETED, FAILED, FLAG_ROLL, LOCK_DEPLOY, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit as submit_deploy
from bot.flags import flows, render
from bot.flags.errors import FlagNotFound, FlagRefused
from bot.flags.render import principal_name
from bot.flags.requests import Change
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.world import World
from tests.flags.conftest import RELEASES, FlagWorld
from tests.support import wait_for


def change(verb: str, flag: str, *, actor: str = "U0ALICE", **attributes: str) -> Change:
    return Change(
        app="api", env="staging", actor=actor, verb=verb, flag=flag, attributes=attributes
    )


def tick(runtime: Runtime, clock: ManualClock, seconds: float = 10) -> None:
    clock.advance(seconds=seconds)
    runtime.scheduler.run_due(clock.now())


def deployments(runtime: Runtime) -> list[Deployment]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(Deployment).order_by(Deployment.id)))


def test_list_shows_values_and_who_changed_them(
    runtime: Runtime, flag_world: FlagWorld, world: World, clock: ManualClock
) -> None:
    text = flows.list_flags(runtime, app="api", env="staging")
    assert "(SSM `/service/api-staging/feature-flag/`)" in text
    assert ":large_green_circle: `NEW_CHECKOUT_FLOW` *true*" in text
    assert ":white_circle: `APPLE_PAY` *false*" in text
    flows.submit(runtime, change("on", "apple_pay"))
    text = flows.list_flags(runtime, app="api", env="staging")
    assert ":large_green_circle: `APPLE_PAY` *true* · last changed by <@U0ALICE>" in text


def test_a_flag_roll_is_written_restarted_and_watched_to_completion(
    runtime: Runtime,
    flag_world: FlagWorld,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
) -> None:
    answer = flows.submit(runtime, change("off", "new_checkout_flow"))
    assert answer.startswith(
        "`NEW_CHECKOUT_FLOW` of `api/staging` is now *false* (parameter version 2)"
    )
    assert flag_world.ssm_value("NEW_CHECKOUT_FLOW") == "false"
    [roll] = deployments(runtime)
    assert roll.kind == FLAG_ROLL and roll.tag == "FF_NEW_CHECKOUT_FLOW=false"
    assert roll.task_definition == world.task_definitions["staging"]  # the same revision
    with runtime.sessions() as db:
        held = deploys.get_lock(db, app="api", env="staging", kind=LOCK_DEPLOY)
        assert held is not None and held.deployment_id == roll.id
    primary = world.rollouts.primary("staging")
    assert primary["id"] == roll.ecs_deployment_id and primary["rolloutState"] == "IN_PROGRESS"

    world.rollouts.progress("staging", running=1, pending=1)
    tick(runtime, clock)
    world.rollouts.complete("staging")
    tick(runtime, clock)
    [roll] = deployments(runtime)
    assert roll.status == COMPLETED
    with runtime.sessions() as db:
        assert deploys.get_lock(db, app="api", env="staging", kind=LOCK_DEPLOY) is None
    assert "Restarted api/staging for the flag change FF_NEW_CHECKOUT_FLOW=false" in wait_for(
        lambda: next(
            (m.text for m in releases.channel_messages(RELEASES) if "Restarted" in m.text), None
        )
    )
    with runtime.sessions() as db:
        [entry] = db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "flag.change"))
        assert entry.outcome == "ok" and entry.target == "flag:api/staging"
        assert entry.detail["before"] == {"value": "true"}
        assert entry.detail["after"] == {"value": "false"}
        assert entry.detail["deployment"] == roll.id


def test_a_running_deploy_refuses_the_flag_before_writing(
    runtime: Runtime, flag_world: FlagWorld, world: World
) -> None:
    submit_deploy(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.1"))
    with pytest.raises(FlagRefused) as refused:
        flows.submit(runtime, change("on", "apple_pay"))
    assert "Nothing was written" in str(refused.value)
    assert "is busy: deployment #1" in str(refused.value)
    assert flag_world.ssm_value("APPLE_PAY") == "false"
    assert [d.kind for d in deployments(runtime)] == ["deploy"]


def test_a_deploy_waits_for_a_running_flag_roll(
    runtime: Runtime, flag_world: FlagWorld, world: World
) -> None:
    from bot.deploys.errors import DeployRefused

    flows.submit(runtime, change("on", "APPLE_PAY"))
    with pytest.raises(DeployRefused) as refused:
        submit_deploy(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.1"))
    assert "`api/staging` is busy: deployment #1 (`api` `FF_APPLE_PAY=true`)" in str(refused.value)
    assert world.service_task_definition("staging") == world.task_definitions["staging"]


def test_a_manual_lock_of_someone_else_refuses(
    runtime: Runtime, flag_world: FlagWorld, world: World
) -> None:
    from bot.deploys.locks import lock

    lock(runtime, app="api", env="staging", actor="U0BOB", reason="load test")
    with pytest.raises(FlagRefused, match="locked by <@U0BOB>"):
        flows.submit(runtime, change("on", "apple_pay"))
    assert flag_world.ssm_value("APPLE_PAY") == "false"


def test_an_unknown_flag_lists_the_parameters(runtime: Runtime, flag_world: FlagWorld) -> None:
    with pytest.raises(FlagNotFound) as refused:
        flows.submit(runtime, change("on", "dark_mode"))
    assert str(refused.value) == (
        "There is no flag `dark_mode` under `/service/api-staging/feature-flag/`. "
        "Flags: `APPLE_PAY`, `NEW_CHECKOUT_FLOW`."
    )


def test_ssm_flags_have_no_attributes(runtime: Runtime, flag_world: FlagWorld) -> None:
    with pytest.raises(FlagRefused, match="have no attributes"):
        flows.submit(runtime, change("set", "APPLE_PAY", colour="red"))
    assert deployments(runtime) == []


def test_someone_without_the_right_changes_nothing(runtime: Runtime, flag_world: FlagWorld) -> None:
    from bot.apps.errors import NotAllowed

    with pytest.raises(NotAllowed, match="Allowed: <@U0ALICE>, <@U0BOB>"):
        flows.submit(runtime, change("on", "APPLE_PAY", actor="U0CAROL"))
    assert flag_world.ssm_value("APPLE_PAY") == "false"


def test_a_failed_restart_is_said(
    runtime: Runtime, flag_world: FlagWorld, world: World, clock: ManualClock
) -> None:
    flows.submit(runtime, change("on", "APPLE_PAY"))
    world.rollouts.fail("staging", reasons=["Essential container in task exited"])
    tick(runtime, clock)
    [roll] = deployments(runtime)
    assert roll.status == FAILED
    assert "circuit breaker" in (roll.outcome or "")


def test_a_repeated_list_asks_ssm_for_each_writer_once_per_version(
    runtime: Runtime, flag_world: FlagWorld, world: World, clock: ManualClock
) -> None:
    # Anyone may list: a list repeated during an incident must not spend SSM's rate
    # on history a flag change then waits behind. A version's writer never changes.
    asked: list[str] = []
    runtime.aws.get("ssm").meta.events.register(
        "provide-client-params.ssm.GetParameterHistory",
        lambda params, **_: asked.append(str(params["Name"]).rsplit("/", 1)[-1]),
    )
    flows.list_flags(runtime, app="api", env="staging")
    first = sorted(asked)
    assert first and "APPLE_PAY" in first
    flows.list_flags(runtime, app="api", env="staging")
    assert sorted(asked) == first  # nothing asked again

    flows.submit(runtime, change("on", "apple_pay"))
    asked.clear()
    text = flows.list_flags(runtime, app="api", env="staging")
    assert asked == ["APPLE_PAY"]  # only the flag with a new version
    assert ":large_green_circle: `APPLE_PAY` *true* · last changed by <@U0ALICE>" in text


def test_a_writer_outside_opsbot_is_named_without_its_account() -> None:
    # Anyone may list, guests too: SSM names a writer by its IAM ARN, account id included.
    line = render.FlagLine(
        name="APPLE_PAY",
        enabled=True,
        value="true",
        attributes={},
        title=None,
        changed_by="arn:aws:sts::123456789012:assumed-role/Deploy/alice",
        changed_at=None,
        by_opsbot=False,
    )
    text = str(
        render.list_message(label="api/staging", backend="SSM", lines=[line], notes=[])["text"]
    )
    assert "last changed by Deploy/alice" in text and "123456789012" not in text
    assert principal_name("arn:aws:iam::123456789012:user/bob") == "bob"
    assert principal_name("arn:aws:iam::123456789012:root") == "root"
    assert principal_name("someone") == "someone"
