"""`opsbot deploy --wait` when the process running its approved request stops mid-run.

The pipeline waits for a deployer's click. Bob approves just before the request
expires; the bot process that runs it dies right after ECS accepted the update
(a botocore hook on that process's own ECS client raises a BaseException, which
nothing in the bot catches, as nothing runs after SIGKILL). The leader's expiry
job later finds the run's claim lapsed and marks the request interrupted; the
deployment it recorded is reconciled by its watch. The CLI must follow that
deployment, not print "not deployed".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.approvals import flows as approval_flows
from bot.approvals.models import INTERRUPTED, PendingAction
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.cli import OK, run_deploy
from bot.runtime import Runtime
from tests.deploys.conftest import deploy_config
from tests.deploys.world import World


class ProcessDied(BaseException):
    """The process stops here: no `except Exception` of the bot runs."""


def test_wait_follows_the_deployment_of_a_request_interrupted_after_it_started(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    config = parse_config(deploy_config(rights={"cli": {"github:octocat": "U0ALICE"}}))
    pipeline = make_runtime(config)  # `opsbot deploy --wait`; the leader's jobs run here too
    server = make_runtime(config)  # the bot process that handles Bob's click

    def die(**_: Any) -> None:
        raise ProcessDied()

    server.aws.get("ecs").meta.events.register("after-call.ecs.UpdateService", die)
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 1:  # Bob approves 2 s before the request expires; his bot dies
            clock.advance(seconds=30 * 60 - 2)
            with pytest.raises(ProcessDied):
                approval_flows.click(server, action_id=1, user_id="U0BOB", decision="approve")
        elif len(naps) == 2:  # the run's claim lapses; the leader's jobs run
            clock.advance(minutes=3)
            pipeline.scheduler.run_due(clock.now())
        else:  # ECS finishes the rollout it was told to start
            world.rollouts.complete("prod")
            clock.advance(seconds=10)

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
    with pipeline.sessions() as db:
        request = db.get(PendingAction, 1)
        assert request is not None and request.result == INTERRUPTED
    assert "request #1 was interrupted after deployment #1 was recorded: following it" in said
    assert not [line for line in said if line.startswith("not deployed")]
    assert code == OK, said
    assert said[-1].startswith("Completed in")
    assert world.service_task_definition("prod").endswith("api-prod:2")
