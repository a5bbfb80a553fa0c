"""Rolling back the release in flight: the rollback takes its deployment over.

The usual moment a bad release sets off an alarm is while it still rolls out (or
is stuck). `/rollback`, and an incident's undo of that deploy, take its deploy
lock over without `--force`: the deployment in flight is superseded by the
rollback of it once the rollback's service update lands. The lock row still
lets one rollback start, never two.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.changes.service import changes_view
from bot.clock import ManualClock
from bot.deploys.checks import plan
from bot.deploys.errors import DeployRefused
from bot.deploys.flows import start
from bot.deploys.models import ROLLBACK, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.test_start_races import lock_holder
from tests.deploys.test_watch import status_of, tick
from tests.deploys.world import World
from tests.support import wait_for

ROLLBACK_BY_BOB = Request(app="api", env="staging", actor="U0BOB", kind=ROLLBACK)


def deploy(runtime: Runtime, world: World, clock: ManualClock, tag: str) -> Deployment:
    """Alice deploys `tag` to staging; ECS has it rolling out (one of two tasks up)."""
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag=tag))
    world.rollouts.progress("staging", running=1, pending=1)
    tick(runtime, clock)
    return status_of(runtime, accepted.deployment_id)


def completed(runtime: Runtime, world: World, clock: ManualClock, tag: str) -> Deployment:
    deployed = deploy(runtime, world, clock, tag)
    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, deployed.id).status == "completed"
    return status_of(runtime, deployed.id)


def stuck(runtime: Runtime, clock: ManualClock, deployment_id: int) -> Deployment:
    for _ in range(70):  # ten minutes of nothing moving, one look every 10 s
        tick(runtime, clock)
        if status_of(runtime, deployment_id).status == "stuck":
            break
    found = status_of(runtime, deployment_id)
    assert found.status == "stuck"
    return found


def audit(runtime: Runtime, action: str) -> list[AuditRecord]:
    with runtime.sessions() as db:
        query = sa.select(AuditRecord).where(AuditRecord.action == action)
        return list(db.scalars(query.order_by(AuditRecord.id)))


def count_deployments(runtime: Runtime) -> int:
    with runtime.sessions() as db:
        return len(db.scalars(sa.select(Deployment)).all())


def thread_of(slack: SlackEmulator, deployment_id: int, needle: str) -> list[str]:
    """The replies in the thread of the announcement that names deployment #id."""
    [parent] = wait_for(
        lambda: [
            m
            for m in slack.channel_messages(RELEASES)
            if any(
                f"Deployment #{deployment_id} ·" in str(e.get("text"))
                for b in m.blocks or []
                if b.get("type") == "context"
                for e in b.get("elements") or []
            )
        ][:1]
    )
    return wait_for(
        lambda: (
            [m.text for m in slack.thread(RELEASES, parent.ts) if needle in m.text]
            and [m.text for m in slack.thread(RELEASES, parent.ts)]
        )
    )


def test_a_rollback_takes_over_the_release_rolling_out_and_supersedes_it(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    good = completed(runtime, world, clock, "1.0.1")
    bad = deploy(runtime, world, clock, "1.0.2")
    assert bad.status == "rolling_out"

    accepted = submit(runtime, ROLLBACK_BY_BOB)
    assert accepted.text.startswith("Rollback #3 of `api` `1.0.1` to `api/staging` started")
    rollback = status_of(runtime, accepted.deployment_id)
    assert (rollback.status, rollback.rollback_of, rollback.forced) == ("rolling_out", good.id, [])
    assert rollback.previous_task_definition == bad.task_definition
    assert world.service_task_definition("staging") == good.task_definition
    assert lock_holder(runtime) == rollback.id

    superseded = status_of(runtime, bad.id)
    assert superseded.status == "superseded"
    assert superseded.outcome == (
        "Superseded while rolling out: rolled back by <@U0BOB>: rollback #3 to #1 (`api` `1.0.1`)."
    )
    [started] = audit(runtime, "rollback.start")
    assert (started.actor, started.detail["takes_over"]) == ("U0BOB", bad.id)
    assert audit(runtime, "rollback.force") == []
    [ended] = [a for a in audit(runtime, "deploy.finish") if a.detail["deployment"] == bad.id]
    assert (ended.outcome, ended.actor, ended.detail["superseded_by"]) == (
        "superseded",
        "U0BOB",
        rollback.id,
    )
    said = thread_of(releases, rollback.id, "is superseded by this one")
    assert "Deployment #2 (`api` `1.0.2`), rolling out, is superseded by this one." in said
    assert any("rolled back by <@U0BOB>" in t for t in thread_of(releases, bad.id, "rolled back"))

    # A second /rollback would go further back, past 1.0.1 (none recorded), and could
    # not take the rollback in flight over: that one restores no revision it replaced.
    with pytest.raises(DeployRefused, match="No successful deployment of `api/staging` before"):
        submit(runtime, ROLLBACK_BY_BOB)
    assert count_deployments(runtime) == 3

    world.rollouts.complete("staging")
    tick(runtime, clock)
    assert status_of(runtime, rollback.id).status == "completed"
    assert status_of(runtime, bad.id).status == "superseded"


def test_an_incidents_undo_of_a_stuck_deploy_needs_no_force(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    good = completed(runtime, world, clock, "1.0.1")
    bad = stuck(runtime, clock, deploy(runtime, world, clock, "1.0.2").id)
    with runtime.sessions() as db:
        view = changes_view(
            db,
            app="api",
            env="staging",
            alarm_at=clock.now(),
            window_min=120,
            incident_id=None,
            now=clock.now(),
        )
    [item] = [i for i in view.items if i.key == f"deploy:{bad.id}"]
    assert item.undo is not None
    undo = Request(
        app="api",
        env="staging",
        actor="U0BOB",
        kind=ROLLBACK,
        rollback_of=item.undo.rollback_of,
        undoes=item.undo.undoes,
        undoes_task_definition=item.undo.undoes_task_definition,
    )

    accepted = submit(runtime, undo)
    assert status_of(runtime, accepted.deployment_id).status == "rolling_out"
    assert world.service_task_definition("staging") == good.task_definition
    assert status_of(runtime, bad.id).outcome == (
        "Superseded while stuck: rolled back by <@U0BOB>: rollback #3 to #1 (`api` `1.0.1`)."
    )

    # The incident's list says who undid it, and a second click is not offered.
    with runtime.sessions() as db:
        view = changes_view(
            db,
            app="api",
            env="staging",
            alarm_at=clock.now(),
            window_min=120,
            incident_id=None,
            now=clock.now(),
        )
    [item] = [i for i in view.items if i.key == f"deploy:{bad.id}"]
    assert (item.undo, item.no_undo) == (None, "already rolled back by <@U0BOB> (#3, rolling out)")


def test_two_rollbacks_of_the_release_in_flight_start_one_deployment(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    good = completed(runtime, world, clock, "1.0.1")
    bad = deploy(runtime, world, clock, "1.0.2")
    # Both pass their checks before either takes the lock: two clicks at the same moment.
    first = plan(runtime, ROLLBACK_BY_BOB)
    second = plan(runtime, Request(app="api", env="staging", actor="U0ALICE", kind=ROLLBACK))
    assert first.takeover == second.takeover == bad.id

    started = start(runtime, first, approved_by=[])
    with pytest.raises(DeployRefused, match=f"is busy: deployment #{started.id}"):
        start(runtime, second, approved_by=[])
    assert count_deployments(runtime) == 3
    assert lock_holder(runtime) == started.id
    assert world.service_task_definition("staging") == good.task_definition
    assert len(world.rollouts.deployments("staging")) == 3  # one rollback among them
    assert [a.outcome for a in audit(runtime, "rollback.request")] == ["refused"]


def test_a_deploy_or_a_rollback_further_back_still_waits_for_the_release_rolling_out(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    oldest = completed(runtime, world, clock, "1.0.1")
    completed(runtime, world, clock, "1.0.4")
    bad = deploy(runtime, world, clock, "1.0.2")
    with pytest.raises(DeployRefused, match="One deploy at a time"):
        submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.0"))
    # Back past the release it replaced: not an undo of the one in flight.
    further = Request(app="api", env="staging", actor="U0BOB", kind=ROLLBACK, rollback_of=oldest.id)
    with pytest.raises(DeployRefused, match="One deploy at a time"):
        submit(runtime, further)
    assert status_of(runtime, bad.id).status == "rolling_out"
    assert lock_holder(runtime) == bad.id
