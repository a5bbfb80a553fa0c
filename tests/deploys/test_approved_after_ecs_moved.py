"""A request that waited for clicks runs only from the revision its message showed.

prod (tests/deploys/conftest.py) is protected and needs a second person: each
request waits for Alice's confirmation and Bob's approval, clicked through the
approvals' own path. While one waits, another release is approved and rolled
out on moto's ECS; the waiting one, approved late, must not take it down.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from moto.ecs.models import EC2ContainerServiceBackend

from bot.approvals import flows as approval_flows
from bot.approvals.models import FAILED, PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.test_deploy_observability import denied, moto_answers, refuse
from tests.deploys.test_watch import tick
from tests.deploys.world import World
from tests.support import wait_for


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def approve(runtime: Runtime, request_id: int | None) -> str:
    assert request_id is not None
    approval_flows.click(runtime, action_id=request_id, user_id="U0ALICE", decision="confirm")
    outcome = approval_flows.click(
        runtime, action_id=request_id, user_id="U0BOB", decision="approve"
    )
    return outcome.text


def release(runtime: Runtime, world: World, clock: ManualClock, tag: str) -> str:
    """Deploy `tag` to prod through its own approved request, rolled out: the revision."""
    accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag=tag))
    assert "started" in approve(runtime, accepted.request_id)
    world.rollouts.complete("prod")
    tick(runtime, clock)
    return world.service_task_definition("prod")


def pending(runtime: Runtime, request_id: int | None) -> PendingAction:
    with runtime.sessions() as db:
        found = db.get(PendingAction, request_id)
        assert found is not None
        return found


def deployments(runtime: Runtime) -> list[tuple[str, str | None, str | None]]:
    with runtime.sessions() as db:
        rows = db.scalars(sa.select(Deployment).order_by(Deployment.id))
        return [(d.kind, d.tag, d.status) for d in rows]


def audited(runtime: Runtime, action: str) -> list[tuple[str, str]]:
    with runtime.sessions() as db:
        rows = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        )
        return [(r.outcome, str(r.detail.get("reason") or "")) for r in rows]


def request_message(slack: SlackEmulator, request_id: int | None) -> str:
    """The blocks of the request's confirmation message in the release channel, as text."""
    found = wait_for(
        lambda: [
            m
            for m in slack.channel_messages(RELEASES)
            if m.text.startswith(f"Request #{request_id}")
        ]
    )
    return str(found[0].blocks)


def forget_the_shown_revision(runtime: Runtime, request_id: int | None) -> None:
    """The payload as a request stored before requests carried the revision they showed."""
    with runtime.sessions() as db:
        action = db.get(PendingAction, request_id)
        assert action is not None
        action.payload = {k: v for k, v in action.payload.items() if k != "shown_task_definition"}
        db.commit()


def test_an_approved_rollback_refuses_once_a_newer_release_runs(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    release(runtime, world, clock, "1.0.1")
    shown = release(runtime, world, clock, "1.0.2")
    asked = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", kind="rollback"))
    waiting = pending(runtime, asked.request_id)
    assert f"*Task definition* `{short(shown)}` → `api-prod:2`" in waiting.details
    assert waiting.payload["shown_task_definition"] == shown

    newer = release(runtime, world, clock, "1.0.4")  # approved and rolled out meanwhile
    answer = approve(runtime, asked.request_id)

    assert answer == (
        f"`api/prod` now runs `{short(newer)}`, not `{short(shown)}` as the request showed "
        "(it changed while the request waited); nothing was changed. Ask again to roll back "
        "from what runs now."
    )
    assert world.service_task_definition("prod") == newer
    assert deployments(runtime) == [
        ("deploy", "1.0.1", "completed"),
        ("deploy", "1.0.2", "completed"),
        ("deploy", "1.0.4", "completed"),
    ]
    assert audited(runtime, "rollback.request") == [("refused", answer)]
    failed = pending(runtime, asked.request_id)
    assert (failed.status, failed.result) == (FAILED, answer)
    wait_for(lambda: f":x: {answer}" in request_message(releases, asked.request_id))


def test_an_approved_deploy_refuses_once_a_newer_release_runs(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    shown = release(runtime, world, clock, "1.0.1")
    asked = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.2"))
    assert pending(runtime, asked.request_id).payload["shown_task_definition"] == shown

    newer = release(runtime, world, clock, "1.0.4")
    answer = approve(runtime, asked.request_id)

    assert answer == (
        f"`api/prod` now runs `{short(newer)}`, not `{short(shown)}` as the request showed "
        "(it changed while the request waited); nothing was changed. Ask again to deploy "
        "from what runs now."
    )
    assert world.service_task_definition("prod") == newer
    assert [tag for _, tag, _ in deployments(runtime)] == ["1.0.1", "1.0.4"]
    assert audited(runtime, "deploy.request") == [("refused", answer)]


def test_an_approved_request_runs_from_the_revision_it_showed(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    release(runtime, world, clock, "1.0.1")
    shown = release(runtime, world, clock, "1.0.2")
    asked = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", kind="rollback"))
    clock.advance(minutes=5)

    assert approve(runtime, asked.request_id).startswith("Rollback #3 of `api` `1.0.1`")
    assert world.service_task_definition("prod").endswith("api-prod:2")
    with runtime.sessions() as db:
        rollback = db.get(Deployment, 3)
        assert rollback is not None and rollback.previous_task_definition == shown


def test_a_request_stored_before_it_carried_the_revision_runs_as_it_did(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    release(runtime, world, clock, "1.0.1")
    release(runtime, world, clock, "1.0.2")
    asked = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", kind="rollback"))
    forget_the_shown_revision(runtime, asked.request_id)
    newer = release(runtime, world, clock, "1.0.4")

    # What every request did before: the pinned rollback runs from whatever runs then.
    assert approve(runtime, asked.request_id).startswith("Rollback #4 of `api` `1.0.1`")
    assert world.service_task_definition("prod").endswith("api-prod:2")
    with runtime.sessions() as db:
        rollback = db.get(Deployment, 4)
        assert rollback is not None and rollback.previous_task_definition == newer


@pytest.mark.parametrize("kind", ["rollback", "deploy"])
def test_an_approved_request_does_not_run_while_ecs_cannot_be_read(
    runtime: Runtime, world: World, clock: ManualClock, kind: str
) -> None:
    release(runtime, world, clock, "1.0.1")
    shown = release(runtime, world, clock, "1.0.2")
    tag = "1.0.4" if kind == "deploy" else None
    asked = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", kind=kind, tag=tag))

    with moto_answers(
        EC2ContainerServiceBackend, "describe_services", refuse(denied("ecs:DescribeServices"))
    ):
        answer = approve(runtime, asked.request_id)

    assert answer.startswith("AWS refused to read the service: AccessDeniedException"), answer
    assert world.service_task_definition("prod") == shown
    assert len(deployments(runtime)) == 2
    assert audited(runtime, f"{kind}.request") == [("failed", answer)]
    assert pending(runtime, asked.request_id).status == FAILED
