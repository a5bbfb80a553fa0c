"""A force on a request that waits for clicks: the approver sees it, and it covers no more.

prod (tests/deploys/conftest.py) is protected, needs a second person, and is
frozen for Black Friday from 2026-11-27 00:00 UTC. The requests are approved
through the approvals' own click path, on moto's ECS and ECR.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from bot.approvals import flows as approval_flows
from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from tests.deploys.world import World

BEFORE_THE_FREEZE = datetime(2026, 11, 26, 23, 50, tzinfo=UTC)


def approve(runtime: Runtime, request_id: int) -> str:
    approval_flows.click(runtime, action_id=request_id, user_id="U0ALICE", decision="confirm")
    outcome = approval_flows.click(
        runtime, action_id=request_id, user_id="U0BOB", decision="approve"
    )
    return outcome.text


def test_a_force_reason_that_overrides_nothing_yet_is_shown_and_overrides_no_later_freeze(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    clock.set(BEFORE_THE_FREEZE)
    accepted = submit(
        runtime,
        Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2", force_reason="just in case"),
    )
    assert accepted.request_id is not None
    with runtime.sessions() as db:
        asked = db.get(PendingAction, accepted.request_id)
        assert asked is not None
        assert asked.details[-1] == (
            "*Force reason* (nothing blocks it now, so it overrides nothing; a check that "
            "starts blocking before it runs refuses it): just in case"
        )

    clock.advance(minutes=15)  # 00:05: the freeze has begun
    answer = approve(runtime, accepted.request_id)
    assert answer.startswith("`api/prod` is in a change freeze until <!date^"), answer
    assert answer.endswith(
        "The request did not show this as forced (it began to block since), so the force "
        "reason approved then does not override it: nothing was changed. Ask again to force "
        "it in front of whoever approves."
    )
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    with runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
        assert (
            db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "deploy.force")).all()
            == []
        )
        [refused] = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "deploy.request")
        ).all()
        assert refused.outcome == "refused" and "change freeze" in refused.detail["reason"]
        assert refused.detail["force_reason"] == "just in case"


def test_a_force_shown_on_the_request_still_overrides_what_it_showed(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 11, 27, 9, 0, tzinfo=UTC))  # in the freeze
    accepted = submit(
        runtime,
        Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2", force_reason="INC-9 fix"),
    )
    assert accepted.request_id is not None
    with runtime.sessions() as db:
        asked = db.get(PendingAction, accepted.request_id)
        assert asked is not None and asked.payload["forces_shown"] == ["freeze"]
        assert "*Forced* (freeze): INC-9 fix" in asked.details

    assert "started" in approve(runtime, accepted.request_id)
    with runtime.sessions() as db:
        [deployment] = db.scalars(sa.select(Deployment)).all()
        assert (deployment.forced, deployment.force_reason) == (["freeze"], "INC-9 fix")
