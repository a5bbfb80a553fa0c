"""An incident's one-click rollback undoes its deploy only: never what replaced it since.

The newer change is made outside opsbot (a new revision and UpdateService, as
CI or the console would, on moto) or through /deploy; the rollback is refused
when clicked and, on a protected environment, again when it is approved.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import (
    alarm,
    approve,
    deploy,
    deployments,
    latest,
    press,
    undo_buttons,
)
from tests.changes.test_outside import deploy_outside_opsbot, text_with
from tests.deploys.world import World
from tests.incidents.helpers import events_of, message_text
from tests.support import LiveService, wait_for


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def audited(runtime: Runtime, action: str) -> list[tuple[str, str]]:
    with runtime.sessions() as db:
        rows = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == action).order_by(AuditRecord.id)
        )
        return [(r.outcome, str(r.detail.get("reason") or "")) for r in rows]


def test_the_undo_refuses_once_a_deploy_outside_opsbot_replaced_the_change(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    deploy(runtime, world, clock, "1.0.1", actor="U0ALICE")
    second = deploy(runtime, world, clock, "1.0.2", actor="U0ALICE")
    second_revision = world.service_task_definition("prod")
    clock.advance(minutes=5)
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    button = undo_buttons(message)["Roll back to 1.0.1"]

    clock.advance(minutes=3)  # CI deploys after the alarm, before anyone clicks
    outside = deploy_outside_opsbot(world, clock, "1.0.3")
    answer = press(live, releases, button, user="U0BOB")
    assert answer == (
        f"`api/prod` now runs `{short(outside)}`, not the revision deploy #{second} put in "
        f"place (`{short(second_revision)}`); nothing was changed."
    )
    assert world.service_task_definition("prod") == outside
    assert [kind for _, kind, _ in deployments(live)] == ["deploy", "deploy"]
    assert audited(runtime, "rollback.request") == [("refused", answer)]
    assert [o for o, _ in audited(runtime, "incident.undo")] == ["refused"]
    assert [e.data["status"] for e in events_of(live, incident.id) if e.kind == "undo"] == [
        "refused"
    ]

    # Once ECS has been looked at, the message knows and offers no button.
    runtime.scheduler.run_due(clock.now())
    reason = f"replaced by `{short(outside)}`, deployed outside opsbot"
    text_with(releases, incident, reason)
    assert not undo_buttons(latest(releases, incident))
    assert press(live, releases, button, user="U0BOB") == f"Nothing was done: {reason}."
    assert world.service_task_definition("prod") == outside


@pytest.mark.parametrize("protected", [True])
def test_an_approved_undo_refuses_when_a_newer_deploy_runs_by_then(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    runtime = live.runtime
    for tag in ("1.0.1", "1.0.2"):
        accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag=tag))
        assert "started" in approve(runtime, accepted.request_id)
        world.rollouts.complete("prod")
        clock.advance(seconds=10)
        runtime.scheduler.run_due(clock.now())
    second_revision = world.service_task_definition("prod")
    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    answer = press(live, releases, undo_buttons(message)["Roll back to 1.0.1"], user="U0ALICE")
    assert answer.startswith("`api/prod` is protected: request #3 waits"), answer
    wait_for(lambda: "waits for approval (request #3)" in message_text(latest(releases, incident)))

    # Meanwhile someone deploys 1.0.4 through /deploy, approved and rolled out.
    newer = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.4"))
    assert "Deploy #3" in approve(runtime, newer.request_id)
    world.rollouts.complete("prod")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    newest_revision = world.service_task_definition("prod")

    answer = approve(runtime, 3)  # the undo, approved late
    assert answer == (
        f"`api/prod` now runs `{short(newest_revision)}`, not the revision deploy #2 put in "
        f"place (`{short(second_revision)}`); nothing was changed."
    )
    assert world.service_task_definition("prod") == newest_revision
    assert [kind for _, kind, _ in deployments(live)] == ["deploy", "deploy", "deploy"]
    assert audited(runtime, "rollback.request") == [("refused", answer)]
