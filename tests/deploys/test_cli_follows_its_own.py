"""`opsbot deploy --wait` follows the deployment its own request started, and no other.

The pipeline acts as Alice. Alice also deploys and rolls flags from Slack (and a
second pipeline may act as her too): a deployment of hers in the same environment
that ends while the request waits or runs is not the request's. The CLI follows
the deployment the request's run recorded on the request; a run that recorded
none (it died in its checks) has nothing to follow, and the CLI says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.approvals import flows as approval_flows
from bot.approvals.models import INTERRUPTED, PendingAction
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys import service as deploys_service
from bot.deploys.cli import FAILED, OK, run_deploy
from bot.deploys.models import COMPLETED, FLAG_ROLL, Deployment
from bot.deploys.models import FAILED as ROLL_FAILED
from bot.runtime import Runtime
from tests.deploys.conftest import deploy_config
from tests.deploys.world import World


class ProcessDied(BaseException):
    """The process stops here: no `except Exception` of the bot runs."""


def _alices_flag_roll(runtime: Runtime, world: World, clock: ManualClock, *, status: str) -> int:
    """Alice's flag roll of prod from Slack, ended with `status`: not the pipeline's."""
    with runtime.sessions() as db:
        roll = deploys_service.create(
            db,
            now=clock.now(),
            app="api",
            env="prod",
            kind=FLAG_ROLL,
            actor="U0ALICE",
            tag="FF_X=true",
            image=world.image("1.0.0"),
            digest=world.digests["1.0.0"],
            task_definition=world.service_task_definition("prod"),
            previous_task_definition=world.service_task_definition("prod"),
        )
        roll.status = status
        roll.outcome = f"Flag roll {status}: FF_X=true."
        roll.finished_at = clock.now()
        db.commit()
        return roll.id


def _run(pipeline: Runtime, sleep: Callable[[float], None]) -> tuple[int, list[str]]:
    said: list[str] = []
    code = run_deploy(
        pipeline,
        app="api",
        env="prod",
        tag="1.0.2",
        identify=lambda: "github:octocat",
        force_reason=None,
        wait=True,
        timeout_s=600,
        say=said.append,
        sleep=sleep,
        monotonic=lambda: 0.0,
    )
    return code, said


def test_a_request_interrupted_before_it_recorded_a_deployment_has_nothing_to_follow(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    config = parse_config(deploy_config(rights={"cli": {"github:octocat": "U0ALICE"}}))
    pipeline = make_runtime(config)  # `opsbot deploy --wait`; the leader's jobs run here too
    server = make_runtime(config)  # the bot process that handles Bob's click
    before = world.service_task_definition("prod")

    def die(**_: Any) -> None:
        raise ProcessDied()

    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            # Meanwhile Alice's flag roll of prod completes; then Bob approves, and the
            # process running the request dies in its checks (it reads the service).
            _alices_flag_roll(pipeline, world, clock, status=COMPLETED)
            server.aws.get("ecs").meta.events.register("after-call.ecs.DescribeServices", die)
            clock.advance(seconds=30 * 60 - 2)
            with pytest.raises(ProcessDied):
                approval_flows.click(server, action_id=1, user_id="U0BOB", decision="approve")
        elif len(naps) == 2:  # the run's claim lapses; the leader's jobs run
            clock.advance(minutes=3)
            pipeline.scheduler.run_due(clock.now())
        else:
            clock.advance(seconds=10)

    code, said = _run(pipeline, sleep)

    with pipeline.sessions() as db:
        request = db.get(PendingAction, 1)
        assert request is not None and request.result == INTERRUPTED
    assert code == FAILED, said
    assert said[-1] == (
        "request #1 was interrupted before a deployment was recorded: nothing to follow. "
        "Check api/prod before you ask again."
    )
    assert not [line for line in said if "following" in line or "FF_X" in line], said
    assert world.service_task_definition("prod") == before


def test_wait_follows_its_own_deployment_not_the_same_persons_next_one(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    config = parse_config(deploy_config(rights={"cli": {"github:octocat": "U0ALICE"}}))
    pipeline = make_runtime(config)
    server = make_runtime(config)
    naps: list[float] = []
    others: list[int] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:
            # Bob approves: the request's deployment starts and ECS finishes it. Before
            # the pipeline looks again, Alice's flag roll of prod runs and fails.
            outcome = approval_flows.click(server, action_id=1, user_id="U0BOB", decision="approve")
            assert outcome.ran and outcome.text.startswith("Deploy #1 of")
            world.rollouts.complete("prod")
            clock.advance(seconds=10)
            others.append(_alices_flag_roll(pipeline, world, clock, status=ROLL_FAILED))
        else:
            clock.advance(seconds=10)

    code, said = _run(pipeline, sleep)

    assert others == [2]
    assert code == OK, said
    assert said[-1].startswith("Completed in"), said
    assert not [line for line in said if "FF_X" in line or line.startswith("failed")], said
    assert world.service_task_definition("prod").endswith("api-prod:2")
    with pipeline.sessions() as db:
        ours = db.get(Deployment, 1)
        assert ours is not None and ours.status == COMPLETED
