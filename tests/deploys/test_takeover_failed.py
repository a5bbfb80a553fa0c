"""A forced takeover whose own deploy fails takes nothing over.

The stuck deployment keeps running in ECS whatever happens to the deploy that
was to replace it. Until that deploy's service update lands, the stuck one
keeps its status, its watch and (handed back, exactly as it held it) the deploy
lock; opsbot says nothing of a takeover that did not happen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from moto.core.exceptions import JsonRESTError

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import service as deploys
from bot.deploys.errors import DeployFailed
from bot.deploys.models import LOCK_DEPLOY, DeployLock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from tests.deploys.test_start_races import InternalError, ecs_call_takes
from tests.deploys.test_undo_in_flight import completed, deploy, stuck
from tests.deploys.test_watch import status_of, tick
from tests.deploys.world import World

TAKE_OVER = Request(
    app="api", env="staging", actor="U0BOB", tag="1.0.4", force_reason="1.0.2 hangs: take over"
)


def deploy_lock(runtime: Runtime) -> tuple[int | None, str, object]:
    with runtime.sessions() as db:
        held = deploys.get_lock(db, app="api", env="staging", kind=LOCK_DEPLOY)
        assert held is not None
        return held.deployment_id, held.holder, held.acquired_at


def finished(runtime: Runtime) -> list[AuditRecord]:
    """How deployments after the first (1.0.1, completed) ended, as audited."""
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == "deploy.finish")
        return [a for a in db.scalars(query.order_by(AuditRecord.id)) if a.detail["deployment"] > 1]


def watched(runtime: Runtime, deployment_id: int) -> bool:
    token = status_of(runtime, deployment_id).watch_job
    return token in [job_id for job_id, _ in runtime.scheduler.pending()]


def refused(call: Callable[[], Any]) -> Any:
    raise JsonRESTError("InvalidParameterException", "TaskDefinition is inactive")


def test_a_forced_deploy_refused_by_ecs_leaves_the_stuck_deployment_as_it_was(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    completed(runtime, world, clock, "1.0.1")
    hung = stuck(runtime, clock, deploy(runtime, world, clock, "1.0.2").id)
    lock_before = deploy_lock(runtime)
    assert lock_before[:2] == (hung.id, "U0ALICE")

    with (
        ecs_call_takes("update_service", refused),
        pytest.raises(DeployFailed, match="AWS refused to update the service"),
    ):
        submit(runtime, TAKE_OVER)

    after = status_of(runtime, hung.id)
    assert (after.status, after.outcome, after.finished_at) == ("stuck", None, None)
    assert after.stuck_at == hung.stuck_at
    assert deploy_lock(runtime) == lock_before
    assert watched(runtime, hung.id)
    assert world.service_task_definition("staging") == hung.task_definition
    [failed] = finished(runtime)  # nothing said the stuck one was taken over
    forced = status_of(runtime, failed.detail["deployment"])
    assert forced.status == "failed"
    assert failed.detail["lock_back_to"] == hung.id
    assert (forced.outcome or "").endswith(
        "Deployment #2 (`api` `1.0.2`) was not taken over: it is still stuck, watched, and "
        "holds `api/staging`."
    )

    # ECS finishes the stuck rollout after all: its watch records it, and frees the lock.
    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, hung.id).status == "completed"
    with runtime.sessions() as db:
        assert db.scalars(sa.select(DeployLock)).all() == []


def test_a_forced_deploy_whose_lost_update_never_landed_hands_the_lock_back(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    completed(runtime, world, clock, "1.0.1")
    hung = stuck(runtime, clock, deploy(runtime, world, clock, "1.0.2").id)
    lock_before = deploy_lock(runtime)

    def down(call: Callable[[], Any]) -> Any:
        raise InternalError()

    with ecs_call_takes("update_service", down):
        accepted = submit(runtime, TAKE_OVER)
    # Its answer lost, the forced deploy holds the lock while ECS is asked; the stuck one
    # is still stuck and watched.
    assert status_of(runtime, accepted.deployment_id).status == "starting"
    assert deploy_lock(runtime)[0] == accepted.deployment_id
    assert status_of(runtime, hung.id).status == "stuck"

    tick(runtime, clock, seconds=150)  # past its grace and claim: settled from ECS
    forced = status_of(runtime, accepted.deployment_id)
    assert forced.status == "failed"
    assert "nothing changed in ECS" in (forced.outcome or "")
    assert status_of(runtime, hung.id).status == "stuck"
    assert deploy_lock(runtime) == lock_before
    assert watched(runtime, hung.id)
    assert [a.outcome for a in finished(runtime)] == ["failed"]


def test_a_forced_deploy_that_lands_supersedes_the_stuck_one_then(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    completed(runtime, world, clock, "1.0.1")
    hung = stuck(runtime, clock, deploy(runtime, world, clock, "1.0.2").id)
    accepted = submit(runtime, TAKE_OVER)
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
    assert deploy_lock(runtime)[:2] == (accepted.deployment_id, "U0BOB")
    old = status_of(runtime, hung.id)
    assert old.status == "superseded"
    assert old.outcome == (
        "Superseded while stuck: taken over by a forced deploy of <@U0BOB>: #3 (`api` `1.0.4`)."
    )
    [superseded] = finished(runtime)
    assert (superseded.outcome, superseded.actor) == ("superseded", "U0BOB")
    tick(runtime, clock)  # its watch stands down
    assert not watched(runtime, hung.id)
