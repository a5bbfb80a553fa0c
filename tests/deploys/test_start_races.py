"""A start slower than `starting_grace_s`, a lost answer, a late update: never two deploys.

ECS is slow here the way it is slow for real: moto's own UpdateService (or
RegisterTaskDefinition) takes a while to answer, and meanwhile the clock moves
and other people act, inside that call. `ecs_call_takes` wraps moto's ECS
backend method for that, as `sandbox/ecs_rollouts.py` wraps it to play ECS's
scheduler; the bot reaches it only through the ECS API. A lost answer is a
5xx moto serves after it applied the update (every try), as ECS may.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from moto.core.exceptions import JsonRESTError
from moto.ecs.models import EC2ContainerServiceBackend

from bot.adapters.aws import longest_call_s
from bot.apps.registry import get_target_or_raise
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import service as deploys
from bot.deploys.errors import DeployFailed, DeployRefused
from bot.deploys.flows import START_CLAIM, StartClaim, observe
from bot.deploys.models import LOCK_DEPLOY, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.deploys.restarts import ChangeKind, ChangeSeen, register_change_kind, start_flag_roll
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.test_watch import leave_a_crashed_start, status_of, thread_texts, tick
from tests.deploys.world import World
from tests.support import wait_for

ALICE = Request(app="api", env="staging", actor="U0ALICE", tag="1.0.1")
BOB = Request(app="api", env="staging", actor="U0BOB", tag="1.0.2")
_BACKEND: Any = EC2ContainerServiceBackend


class InternalError(JsonRESTError):
    """What ECS answers when it failed on its side (after the change, or not)."""

    code = 500

    def __init__(self) -> None:
        super().__init__("ServerException", "Service Unavailable")


@contextmanager
def ecs_call_takes(name: str, meanwhile: Callable[[Callable[[], Any]], Any]) -> Iterator[None]:
    """Moto's ECS `name` (a backend method) runs as `meanwhile(call)` decides, `call` doing it."""
    original = getattr(EC2ContainerServiceBackend, name)

    def slow(backend: Any, *args: Any, **kwargs: Any) -> Any:
        return meanwhile(lambda: original(backend, *args, **kwargs))

    setattr(_BACKEND, name, slow)
    try:
        yield
    finally:
        setattr(_BACKEND, name, original)


def first_call(action: Callable[[], None]) -> Callable[[Callable[[], Any]], Any]:
    """A `meanwhile` that runs `action` while the first call is on its way, then makes it."""
    calls: list[int] = []

    def meanwhile(call: Callable[[], Any]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            action()
        return call()

    return meanwhile


def attempt(action: Callable[[], Any]) -> Any:
    """What `action` returns, or the exception it raised."""
    try:
        return action()
    except Exception as exc:
        return exc


def lock_holder(runtime: Runtime) -> int | None:
    with runtime.sessions() as db:
        held = deploys.get_lock(db, app="api", env="staging", kind=LOCK_DEPLOY)
        return held.deployment_id if held is not None else None


def audit(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return list(db.scalars(query.order_by(AuditRecord.id)))


def deployments(runtime: Runtime) -> list[Deployment]:
    with runtime.sessions() as db:
        return list(db.scalars(sa.select(Deployment).order_by(Deployment.id)))


def test_a_slow_service_update_is_not_settled_while_its_start_is_at_work(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """UpdateService takes 61 s (throttled, retried): past starting_grace_s (60 s here),
    its watch looks and Bob asks for the environment. Neither settles it as dead."""
    meanwhile: dict[str, Any] = {}

    def slow_answer() -> None:
        clock.advance(seconds=61)
        meanwhile["watched"] = runtime.scheduler.run_due(clock.now())
        meanwhile["bob"] = attempt(lambda: submit(runtime, BOB))

    with ecs_call_takes("update_service", first_call(slow_answer)):
        accepted = submit(runtime, ALICE)

    assert len(meanwhile["watched"]) == 1  # its watch ran, and left it starting
    assert isinstance(meanwhile["bob"], DeployRefused)
    assert "is busy: deployment #1" in str(meanwhile["bob"]) and "is starting" in str(
        meanwhile["bob"]
    )
    alice = status_of(runtime, accepted.deployment_id)
    assert (alice.status, alice.outcome) == ("rolling_out", None)
    assert "started" in accepted.text
    assert world.service_task_definition("staging") == alice.task_definition
    assert lock_holder(runtime) == alice.id
    assert [d.actor for d in deployments(runtime)] == ["U0ALICE"]
    assert audit(runtime, "deploy.recover") == []


def test_a_start_given_up_while_stalled_never_updates_the_service(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """Alice's process stalls in RegisterTaskDefinition for 20 minutes: past its claim, Bob's
    deploy settles hers as failed and deploys. When her start goes on, it finds its
    deployment settled and does not update the service over Bob's."""
    meanwhile: dict[str, Any] = {}

    def stall() -> None:
        clock.advance(minutes=20)
        meanwhile["bob"] = submit(runtime, BOB)

    with (
        ecs_call_takes("register_task_definition", first_call(stall)),
        pytest.raises(DeployFailed, match="was marked FAILED while its start waited on AWS"),
    ):
        submit(runtime, ALICE)

    alice, bob = deployments(runtime)
    assert alice.status == "failed"
    assert "Interrupted before the service was updated (the bot stopped)" in (alice.outcome or "")
    assert bob.status == "rolling_out"
    assert world.service_task_definition("staging") == bob.task_definition
    assert lock_holder(runtime) == bob.id
    [refused] = audit(runtime, "deploy.update")
    assert (refused.actor, refused.outcome, refused.detail["deployment"]) == (
        "U0ALICE",
        "refused",
        alice.id,
    )


def test_an_update_that_lands_after_its_deployment_was_given_up_is_taken_back(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """The process stalls with its UpdateService on the way, past its claim: the watch
    settles the deployment as failed (ECS does not run it yet), then the update lands.
    With the environment free, the start takes the deployment back and it is watched."""

    def stall() -> None:
        clock.advance(minutes=20)
        runtime.scheduler.run_due(clock.now())

    with ecs_call_takes("update_service", first_call(stall)):
        accepted = submit(runtime, ALICE)

    alice = status_of(runtime, accepted.deployment_id)
    assert (alice.status, alice.outcome, alice.finished_at) == ("rolling_out", None, None)
    assert world.service_task_definition("staging") == alice.task_definition
    assert alice.ecs_deployment_id == world.rollouts.primary("staging")["id"]
    assert lock_holder(runtime) == alice.id
    found = [a.detail["found"] for a in audit(runtime, "deploy.recover")]
    assert found == [
        "the service was never updated: marked failed",
        "the service update landed after it was marked failed: following it",
    ]
    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, alice.id).status == "completed"
    assert lock_holder(runtime) is None


def test_an_update_that_lands_while_another_deploy_holds_the_environment_is_said(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    """As above, but Bob deployed meanwhile: Alice's update lands over his. Nobody may
    be told "started" as if all were well: Alice and the channel read what happened."""

    def stall() -> None:
        clock.advance(minutes=20)
        submit(runtime, BOB)

    with (
        ecs_call_takes("update_service", first_call(stall)),
        pytest.raises(DeployFailed, match="landed after it was marked FAILED") as raised,
    ):
        submit(runtime, ALICE)

    alice, bob = deployments(runtime)
    assert "while deployment #2 (`api` `1.0.2`) of <@U0BOB> holds `api/staging`" in str(
        raised.value
    )
    assert alice.status == "failed" and lock_holder(runtime) == bob.id
    assert world.service_task_definition("staging") == alice.task_definition  # it came last
    [late] = audit(runtime, "deploy.late_update")
    assert (late.actor, late.outcome, late.detail["holder"]) == ("opsbot", "failed", bob.id)
    wait_for(
        lambda: any(
            "ECS rolls out whichever update came last" in m.text
            for m in releases.channel_messages(RELEASES)
        )
    )
    tick(runtime, clock)  # Bob's watch: his rollout was replaced
    assert status_of(runtime, bob.id).status == "superseded"


def test_a_lost_answer_keeps_the_deployment_starting_until_ecs_says(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    """ECS applies the update but every try is answered 500: Alice is told it is being
    checked, the lock stays hers, and the watch adopts the rollout from ECS."""

    def lost(call: Callable[[], Any]) -> Any:
        call()
        raise InternalError()

    with ecs_call_takes("update_service", lost):
        accepted = submit(runtime, ALICE)
    assert "AWS did not answer the service update; opsbot is checking whether the update " in (
        accepted.text
    )
    alice = status_of(runtime, accepted.deployment_id)
    assert alice.status == "starting" and lock_holder(runtime) == alice.id
    with pytest.raises(DeployRefused, match="is starting"):
        submit(runtime, BOB)
    [unknown] = audit(runtime, "deploy.update")
    assert (unknown.outcome, unknown.detail["aws_error"]) == ("unknown", "ServerException")

    tick(runtime, clock, seconds=30)
    assert status_of(runtime, alice.id).status == "starting"  # AWS may still be at it
    tick(runtime, clock, seconds=120)
    adopted = status_of(runtime, alice.id)
    assert adopted.status == "rolling_out"
    assert adopted.ecs_deployment_id == world.rollouts.primary("staging")["id"]
    texts = thread_texts(releases, count=2)
    assert any("AWS did not answer the service update (`ServerException`)" in t for t in texts)
    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, alice.id).status == "completed"


def test_a_lost_answer_to_an_update_that_never_landed_fails_it_from_ecs(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    before = world.service_task_definition("staging")

    def down(call: Callable[[], Any]) -> Any:
        raise InternalError()

    with ecs_call_takes("update_service", down):
        accepted = submit(runtime, ALICE)
    assert status_of(runtime, accepted.deployment_id).status == "starting"
    tick(runtime, clock, seconds=150)
    failed = status_of(runtime, accepted.deployment_id)
    assert failed.status == "failed"
    assert failed.outcome == (
        "Interrupted before the service was updated (AWS did not answer the service update, "
        "`ServerException`); nothing changed in ECS. Deploy again."
    )
    assert world.service_task_definition("staging") == before
    assert lock_holder(runtime) is None
    submit(runtime, BOB)


def test_a_clear_refusal_of_the_update_fails_at_once(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    def denied(call: Callable[[], Any]) -> Any:
        raise JsonRESTError("AccessDeniedException", "not authorized to perform ecs:UpdateService")

    with (
        ecs_call_takes("update_service", denied),
        pytest.raises(DeployFailed, match="AWS refused to update the service: AccessDenied"),
    ):
        submit(runtime, ALICE)
    [alice] = deployments(runtime)
    assert alice.status == "failed" and lock_holder(runtime) is None
    [finished] = audit(runtime, "deploy.finish")
    assert finished.detail["aws_error"] == "AccessDeniedException"


def test_a_forced_redeploy_of_the_running_image_that_died_before_its_update_is_not_completed(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """The start died before registering its revision: the service still runs the old
    revision, with the same image. That is no update of this deployment's."""
    running = world.task_definitions["staging"]
    with runtime.sessions() as db:
        crashed = deploys.create(
            db,
            now=clock.now(),
            app="api",
            env="staging",
            kind="deploy",
            actor="U0BOB",
            tag="1.0.0",
            image=world.image("1.0.0"),
            digest=world.digests["1.0.0"],
            previous_image=world.image("1.0.0"),
            previous_task_definition=running,
        )
        crashed.forced = ["redeploy"]
        deploys.take_lock(
            db,
            app="api",
            env="staging",
            kind=LOCK_DEPLOY,
            holder="U0BOB",
            deployment_id=crashed.id,
            now=clock.now(),
        )
        db.commit()
    clock.advance(seconds=61)
    assert observe(runtime, deployment_id=crashed.id) == "failed"
    settled = status_of(runtime, crashed.id)
    assert "Interrupted before the service was updated" in (settled.outcome or "")
    assert world.service_task_definition("staging") == running


class ProcessDied(BaseException):
    """The process stops here: no `except Exception` of the bot runs."""


def test_a_start_that_stopped_with_its_update_on_the_way_is_settled_after_its_grace(
    runtime: Runtime, make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    """The start stops as UpdateService goes out, and gives up its claim on the way out:
    the next process settles the deployment once starting_grace_s has passed."""

    def die(**_: Any) -> None:
        raise ProcessDied()

    runtime.aws.get("ecs").meta.events.register("before-call.ecs.UpdateService", die)
    with pytest.raises(ProcessDied):
        submit(runtime, ALICE)
    [alice] = deployments(runtime)
    assert alice.status == "starting"

    after = make_runtime()
    clock.advance(seconds=61)
    after.scheduler.run_due(clock.now())
    assert status_of(after, alice.id).status == "failed"


def test_a_claim_left_by_a_process_that_died_lapses(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """Killed outright, a start leaves its claim: it is settled once the claim lapses."""
    crashed = leave_a_crashed_start(runtime, world, clock)
    with runtime.sessions() as db:
        row = deploys.get_or_raise(db, deployment_id=crashed.id, lock=True)
        deploys.claim(row, until=clock.now() + START_CLAIM)
        db.commit()
    clock.advance(seconds=61)  # past starting_grace_s, not past its claim
    assert observe(runtime, deployment_id=crashed.id) == "starting"
    clock.advance(seconds=60)
    assert observe(runtime, deployment_id=crashed.id) == "failed"


def test_a_start_claim_is_renewed_for_as_long_as_its_aws_calls_may_take(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """Renewed while boto3's retries and timeouts may keep a call going (245 s for one
    ECS call), then no longer: whatever holds the start up then, it is settled."""
    assert longest_call_s("ecs") == 3 * (5 + 60) + 2 * 25
    crashed = leave_a_crashed_start(runtime, world, clock)
    with StartClaim(runtime, deployment_id=crashed.id, budget_s=longest_call_s("ecs")) as claim:
        clock.advance(seconds=100)
        assert claim.renew()
        clock.advance(seconds=100)  # past starting_grace_s; claimed until 220 s
        assert observe(runtime, deployment_id=crashed.id) == "starting"
        clock.advance(seconds=100)
        assert not claim.renew()  # 300 s: longer than the call can take
        assert observe(runtime, deployment_id=crashed.id) == "failed"


# -- flag rolls: the same start, with a forced new deployment ---------------------------------

TEST_CHANGE = register_change_kind(
    ChangeKind(
        name="test-parameter",
        inspect=lambda services, change: ChangeSeen(written=True, state="`FF_TEST` is *on*"),
        settled=lambda db_session, settled, now: None,
    )
)


def roll(runtime: Runtime, world: World) -> Deployment:
    """Restart api/staging for a flag Alice turned on (an SSM parameter, as flags write it)."""

    def write() -> None:
        world.aws("ssm").put_parameter(Name="/test/FF_TEST", Value="true", Type="String")

    return start_flag_roll(
        runtime,
        target=get_target_or_raise(runtime.config, app="api", env="staging"),
        actor="U0ALICE",
        what="FF_TEST=true",
        channel=RELEASES,
        approved_by=[],
        change=write,
        record={"kind": TEST_CHANGE.name, "parameter": "/test/FF_TEST"},
    )


def test_a_slow_restart_is_not_settled_while_its_flag_roll_is_at_work(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    meanwhile: dict[str, Any] = {}

    def slow_answer() -> None:
        clock.advance(seconds=61)
        meanwhile["watched"] = runtime.scheduler.run_due(clock.now())
        meanwhile["bob"] = attempt(lambda: submit(runtime, BOB))

    with ecs_call_takes("update_service", first_call(slow_answer)):
        rolled = roll(runtime, world)
    assert isinstance(meanwhile["bob"], DeployRefused) and "is starting" in str(meanwhile["bob"])
    assert status_of(runtime, rolled.id).status == "rolling_out"
    assert lock_holder(runtime) == rolled.id


def test_a_restart_whose_answer_was_lost_is_followed_from_ecs(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    before = world.rollouts.primary("staging")["id"]

    def lost(call: Callable[[], Any]) -> Any:
        call()
        raise InternalError()

    with ecs_call_takes("update_service", lost):
        rolled = roll(runtime, world)
    assert rolled.status == "starting" and lock_holder(runtime) == rolled.id
    tick(runtime, clock, seconds=150)
    followed = status_of(runtime, rolled.id)
    assert followed.status == "rolling_out"
    assert followed.ecs_deployment_id == world.rollouts.primary("staging")["id"] != before
