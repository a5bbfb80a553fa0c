"""Rollback, history, status and releases.

Each deployment is finished by `world.rollouts.complete` (sandbox/ecs.py: ECS's
deployment scheduler played on moto's state), then one run of its watch job.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from bot.adapters import ecs
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys import queries, render, service
from bot.deploys.errors import DeployError
from bot.deploys.models import Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from bot.slack_dates import slack_date
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.world import World
from tests.support import wait_for


def deploy_and_finish(runtime: Runtime, world: World, clock: ManualClock, tag: str) -> int:
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag=tag))
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    assert accepted.deployment_id is not None
    return accepted.deployment_id


def refused(runtime: Runtime, request: Request) -> str:
    try:
        submit(runtime, request)
    except DeployError as exc:
        return str(exc)
    raise AssertionError(f"{request} was not refused")


def test_rollback_returns_to_the_last_successful_revision_or_a_chosen_one(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    rollback = Request(app="api", env="staging", actor="U0BOB", kind="rollback")
    assert "No successful deployment of `api/staging` is recorded" in refused(runtime, rollback)
    first = deploy_and_finish(runtime, world, clock, "1.0.1")  # api-staging:2
    second = deploy_and_finish(runtime, world, clock, "1.0.2")  # api-staging:3
    revisions = world.revisions("api-staging")
    assert [r.rsplit(":", 1)[1] for r in revisions] == ["1", "2", "3"]

    accepted = submit(runtime, rollback)
    assert world.service_task_definition("staging").endswith("api-staging:2")
    assert world.revisions("api-staging") == revisions  # a rollback registers nothing new
    with runtime.sessions() as db:
        back = db.get(Deployment, accepted.deployment_id)
        assert back is not None
        assert (back.kind, back.rollback_of, back.tag) == ("rollback", first, "1.0.1")
        assert back.image == world.image("1.0.1")
        assert back.previous_task_definition is not None
        assert back.previous_task_definition.endswith("api-staging:3")
        start = db.scalars(
            sa.select(AuditRecord).where(AuditRecord.action == "rollback.start")
        ).one()
        assert start.actor == "U0BOB"
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    # Rolling back again goes further back (there is nothing before #1), never forward.
    assert refused(runtime, rollback) == (
        "No successful deployment of `api/staging` before the one running now (#1) is "
        "recorded: deploy a tag instead (`/deploy api staging &lt;tag&gt;`)."
    )

    # Back to the second deployment, by its id; the first is what runs now.
    again = submit(runtime, Request(**{**rollback.__dict__, "rollback_of": second}))
    assert again.deployment_id is not None
    assert world.service_task_definition("staging").endswith("api-staging:3")
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    assert "already runs deployment #2's revision `api-staging:3`" in refused(
        runtime, Request(**{**rollback.__dict__, "rollback_of": second})
    )


def test_rollback_to_a_deployment_that_did_not_complete_is_refused(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    good = deploy_and_finish(runtime, world, clock, "1.0.1")
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    world.rollouts.fail("staging", reasons=["Essential container in task exited"])
    clock.advance(seconds=10)
    runtime.scheduler.run_due(clock.now())
    message = refused(
        runtime,
        Request(
            app="api",
            env="staging",
            actor="U0ALICE",
            kind="rollback",
            rollback_of=accepted.deployment_id,
        ),
    )
    assert message == (
        f"Deployment #{accepted.deployment_id} did not complete (failed); roll back to one "
        f"that did: #{good} (`1.0.1`)."
    )


def test_history_lists_the_newest_deployments_first(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    deploy_and_finish(runtime, world, clock, "1.0.1")
    deploy_and_finish(runtime, world, clock, "1.0.2")
    submit(runtime, Request(app="api", env="staging", actor="U0BOB", kind="rollback"))

    rows = queries.history(runtime, app="api", env="staging", limit=10)
    assert [(d.id, d.kind, d.tag, d.status) for d in rows] == [
        (3, "rollback", "1.0.1", "rolling_out"),
        (2, "deploy", "1.0.2", "completed"),
        (1, "deploy", "1.0.1", "completed"),
    ]
    text = render.history_message("api", "staging", rows[:2])["text"]
    lines = text.splitlines()
    assert lines[0] == "*Deployments of api/staging* (newest first)"
    assert lines[1].startswith(
        f"#3 {slack_date(datetime(2026, 11, 25, 10, 0, 20, tzinfo=UTC))} · rollback `1.0.1`"
    )
    assert "<@U0BOB> · rolling out" in lines[1]
    assert lines[2].startswith(
        f"#2 {slack_date(datetime(2026, 11, 25, 10, 0, 10, tzinfo=UTC))} · deploy `1.0.2`"
    )
    assert "completed in 10 s" in lines[2]
    assert len(lines) == 3


def test_status_and_releases_say_what_runs_where(
    runtime: Runtime, world: World, clock: ManualClock
) -> None:
    deploy_and_finish(runtime, world, clock, "1.0.2")
    view = queries.status(runtime, app="api", env="staging")
    [now] = view.revisions
    assert now.task_definition.endswith("api-staging:2")
    assert now.image == world.image("1.0.2")
    assert now.by == "U0ALICE" and now.since == clock.now()
    text = render.status_message(view)["text"]
    assert "now: `api-staging:2`" in text and "by <@U0ALICE> (#1)" in text
    assert world.image("1.0.2") in text

    prod = render.status_message(queries.status(runtime, app="api", env="prod"))["text"]
    assert "now: `api-prod:1`" in prod and "outside opsbot" in prod

    releases = queries.releases(runtime, app="api")
    rows = releases.by_repository["api"]
    assert [r.image.tags for r in rows] == [
        ("1.0.4",),
        ("1.0.3",),
        ("1.0.2",),
        ("1.0.1",),
        ("1.0.0",),
    ]
    running = {r.image.tags[0]: r.running_in for r in rows}
    assert running == {
        "1.0.4": [],
        "1.0.3": [],
        "1.0.2": ["staging"],
        "1.0.1": [],
        "1.0.0": ["prod"],
    }
    text = render.releases_message(releases)["text"]
    assert "`1.0.2` · `" in text and "running in *staging*" in text
    assert f"pushed {slack_date(datetime(2026, 11, 20, 9, 4, tzinfo=UTC))}" in text


def test_a_rollback_of_a_protected_environment_asks_for_its_clicks(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    with runtime.sessions() as db:
        done = service.create(
            db,
            now=clock.now(),
            app="api",
            env="prod",
            kind="deploy",
            actor="U0ALICE",
            tag="1.0.0",
            image=world.image("1.0.0"),
            digest=world.digests["1.0.0"],
            task_definition=world.task_definitions["prod"],
        )
        done.status = "completed"
        db.commit()
    client = world.aws("ecs")
    current = ecs.describe_task_definition(client, arn=world.task_definitions["prod"])
    newer = ecs.register_with_image(client, current, container="app", image=world.image("1.0.1"))
    ecs.update_service(client, cluster="prod", service="api", task_definition=newer.arn)
    world.rollouts.complete("prod")

    accepted = submit(runtime, Request(app="api", env="prod", actor="U0ALICE", kind="rollback"))
    assert accepted.request_id == 1 and accepted.deployment_id is None
    assert world.service_task_definition("prod") == newer.arn
    [message] = wait_for(lambda: releases.channel_messages(RELEASES))
    [actions] = [b for b in message.blocks or [] if b["type"] == "actions"]
    assert [e["text"]["text"] for e in actions["elements"]] == ["Roll back", "Approve", "Cancel"]
    assert "asks to *roll back* `api/prod` to deployment #1" in str(message.blocks)
