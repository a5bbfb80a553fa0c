"""A lost UpdateService answer, and ECS rolled the release back before opsbot looked.

UpdateService lands but every try is answered 500; the new tasks fail to start
and the circuit breaker rolls the service back, all before the deployment's
grace is over. ECS still lists the release's deployment (ACTIVE, FAILED): the
update did land, so the deployment is followed and reported FAILED with ECS's
reasons, never "nothing changed in ECS".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from tests.deploys.test_start_races import InternalError, ecs_call_takes, lock_holder
from tests.deploys.test_undo_in_flight import completed
from tests.deploys.test_watch import status_of, tick
from tests.deploys.world import World


def lost(call: Callable[[], Any]) -> Any:
    call()
    raise InternalError()


def test_a_lost_update_that_ecs_rolled_back_is_reported_failed_with_ecs_reasons(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    good = completed(runtime, world, clock, "1.0.1")
    with ecs_call_takes("update_service", lost):
        accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    release = status_of(runtime, accepted.deployment_id)
    assert release.status == "starting"
    world.rollouts.fail(
        "staging", reasons=["CannotPullContainerError: pull image manifest has been retried"]
    )
    assert world.service_task_definition("staging") == good.task_definition

    tick(runtime, clock, seconds=150)  # past its grace and claim: settled from ECS
    adopted = status_of(runtime, release.id)
    assert adopted.status == "rolling_out"
    failed_rollout = next(
        d for d in world.rollouts.deployments("staging") if d["rolloutState"] == "FAILED"
    )
    assert adopted.ecs_deployment_id == failed_rollout["id"]
    with runtime.sessions() as db:
        recovered = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "deploy.recover")
        ).one()
    assert recovered.detail["found"] == (
        "the service had been updated (ECS lists that deployment ACTIVE, FAILED): watching it"
    )

    tick(runtime, clock)  # the watch's look
    ended = status_of(runtime, release.id)
    assert ended.status == "failed"
    outcome = ended.outcome or ""
    assert "nothing changed in ECS" not in outcome
    assert "ECS deployment circuit breaker: tasks failed to start" in outcome
    assert "ECS rolled back to `api-staging:2`" in outcome
    assert "CannotPullContainerError" in outcome
    assert lock_holder(runtime) is None


def test_a_lost_rollback_of_the_release_in_flight_that_never_landed_changed_nothing(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    """ECS still lists the revision a rollback restores (the earlier deployment of it,
    draining behind the release in flight): that one is not the rollback's."""
    good = completed(runtime, world, clock, "1.0.1")
    release = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    assert [d["taskDefinition"] for d in world.rollouts.deployments("staging")][1] == (
        good.task_definition
    )

    def down(call: Callable[[], Any]) -> Any:
        raise InternalError()

    with ecs_call_takes("update_service", down):
        accepted = submit(
            runtime, Request(app="api", env="staging", actor="U0BOB", kind="rollback")
        )
    tick(runtime, clock, seconds=150)
    rollback = status_of(runtime, accepted.deployment_id)
    assert rollback.status == "failed"
    assert "nothing changed in ECS" in (rollback.outcome or "")
    assert status_of(runtime, release.deployment_id).status == "rolling_out"
    assert lock_holder(runtime) == release.deployment_id
