"""Deploying an image by tag: resolution in ECR, the checks, the new revision, the update.

Rollouts move only when the test moves them: `world.rollouts` (sandbox/ecs.py)
plays ECS's deployment scheduler on moto's backend state (see test_watch.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import sqlalchemy as sa

from bot.apps.errors import AppError
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import parse_config
from bot.deploys.errors import DeployError
from bot.deploys.models import DeployLock, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from bot.slack_dates import slack_date
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import RELEASES, T0, deploy_config
from tests.deploys.world import World
from tests.support import wait_for

READ_ONLY = {"taskDefinitionArn", "revision", "registeredAt", "registeredBy", "status"}


def test_new_revision_changes_only_the_image_pinned_by_digest(
    runtime: Runtime, world: World, releases: SlackEmulator
) -> None:
    before_arn = world.service_task_definition("staging")
    before = world.describe_task_definition(before_arn)

    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))

    after_arn = world.service_task_definition("staging")
    assert after_arn != before_arn and after_arn.endswith("api-staging:2")
    after = world.describe_task_definition(after_arn)
    pinned = f"{world.repository_uri}@{world.digests['1.0.2']}"
    assert after["containerDefinitions"][0]["image"] == pinned
    # Every other field, of the task and of each container, is as it was.
    assert {k: v for k, v in after.items() if k not in READ_ONLY | {"containerDefinitions"}} == {
        k: v for k, v in before.items() if k not in READ_ONLY | {"containerDefinitions"}
    }
    assert after["containerDefinitions"][0] == {
        **before["containerDefinitions"][0],
        "image": pinned,
    }
    assert after["containerDefinitions"][1:] == before["containerDefinitions"][1:]
    assert after["tags"] == before["tags"] and after["tags"]

    with runtime.sessions() as db:
        deployment = db.get(Deployment, accepted.deployment_id)
        assert deployment is not None
        assert deployment.status == "rolling_out"
        assert deployment.image == pinned and deployment.tag == "1.0.2"
        assert deployment.previous_task_definition == before_arn
        assert deployment.task_definition == after_arn
        assert deployment.ecs_deployment_id == world.rollouts.primary("staging")["id"]
        [lock] = db.scalars(sa.select(DeployLock)).all()
        assert (lock.kind, lock.holder, lock.deployment_id) == ("deploy", "U0ALICE", deployment.id)
        actions = [a.action for a in db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id))]
        assert actions == ["deploy.start"]

    # Posted when the deployment starts, updated once the service is updated.
    wait_for(lambda: "api-staging:2" in str(releases.channel_messages(RELEASES)[-1:]))
    [announcement] = releases.channel_messages(RELEASES)
    text = str(announcement.blocks)
    assert "<@U0ALICE>" in text
    assert f"api@{world.digests['1.0.0'].removeprefix('sha256:')[:12]}" in text
    assert f"api@{world.digests['1.0.2'].removeprefix('sha256:')[:12]}" in text
    assert "api-staging:1" in text and "api-staging:2" in text


def test_a_missing_tag_lists_the_most_recent_tags(runtime: Runtime, world: World) -> None:
    before = world.service_task_definition("staging")
    message = refusal(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="9.9.9"))
    assert "There is no image `9.9.9` in `api`" in message
    # recent_tags is 3 in the test config: the three newest pushes, newest first.
    assert "Most recent tags in `api`: `1.0.4`, `1.0.3`, `1.0.2`." in message
    assert world.service_task_definition("staging") == before
    assert world.revisions("api-staging") == [before]
    with runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
        [refused] = db.scalars(sa.select(AuditRecord)).all()
        assert (refused.action, refused.outcome) == ("deploy.request", "refused")


def test_watch_posts_progress_and_completes(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    clock.advance(seconds=10)
    world.rollouts.progress("staging", running=1, pending=1)
    assert len(runtime.scheduler.run_due(clock.now())) == 1
    clock.advance(seconds=10)
    world.rollouts.complete("staging")
    assert len(runtime.scheduler.run_due(clock.now())) == 1
    clock.advance(seconds=60)
    assert runtime.scheduler.run_due(clock.now()) == []  # finished: nothing more to watch

    with runtime.sessions() as db:
        deployment = db.get(Deployment, accepted.deployment_id)
        assert deployment is not None and deployment.status == "completed"
        assert db.scalars(sa.select(DeployLock)).all() == []
    [message] = wait_for(lambda: releases.channel_messages(RELEASES))
    thread = wait_for(
        lambda: (
            len(releases.thread(RELEASES, message.ts)) >= 3
            and releases.thread(RELEASES, message.ts)
        )
    )
    texts = [m.text for m in thread]
    assert any("1/2 running, 1 pending" in t for t in texts)
    assert any("Completed in" in t and "2/2 running" in t for t in texts)
    wait_for(lambda: "Deployed" in releases.channel_messages(RELEASES)[0].text)


def refusal(runtime: Runtime, request: Request) -> str:
    try:
        submit(runtime, request)
    except (DeployError, AppError) as exc:
        return str(exc)
    raise AssertionError(f"{request} was not refused")


def test_critical_findings_refuse_unless_forced_and_the_force_is_audited(
    runtime: Runtime, world: World
) -> None:
    before = world.service_task_definition("staging")
    message = refusal(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.3"))
    assert "CRITICAL 2 finding(s)" in message and "(all: CRITICAL 2 · HIGH 3)" in message
    assert '--force "<reason>"' in message
    assert world.service_task_definition("staging") == before

    accepted = submit(
        runtime,
        Request(
            app="api",
            env="staging",
            actor="U0ALICE",
            tag="1.0.3",
            force_reason="CVE not reachable, INC-7",
        ),
    )
    assert world.service_task_definition("staging") != before
    with runtime.sessions() as db:
        deployment = db.get(Deployment, accepted.deployment_id)
        assert deployment is not None
        assert deployment.forced == ["scan"]
        assert deployment.force_reason == "CVE not reachable, INC-7"
        records = db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id)).all()
        assert [(r.action, r.outcome) for r in records] == [
            ("deploy.request", "refused"),
            ("deploy.start", "ok"),
            ("deploy.force", "ok"),
        ]
        assert records[2].detail["reason"] == "CVE not reachable, INC-7"
        assert records[2].detail["overrode"] == ["scan"]


def test_an_unscanned_image_deploys_unless_a_scan_is_required(
    make_runtime: Callable[..., Runtime], world: World
) -> None:
    runtime = make_runtime()
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.4"))
    with runtime.sessions() as db:
        deployment = db.get(Deployment, accepted.deployment_id)
        assert deployment is not None and deployment.scan["text"] == "not scanned"

    strict = make_runtime(
        parse_config(deploy_config(deploys={"require_scan": True, "poll_interval_s": 10}))
    )
    message = refusal(strict, Request(app="api", env="prod", actor="U0ALICE", tag="1.0.4"))
    assert "no completed ECR scan (not scanned)" in message


def test_the_running_image_is_not_redeployed_without_force(runtime: Runtime, world: World) -> None:
    message = refusal(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.0"))
    assert "already runs this image" in message
    assert world.revisions("api-staging") == [world.task_definitions["staging"]]


def test_a_freeze_refuses_and_only_allowed_people_may_force_it(
    make_runtime: Callable[..., Runtime], world: World, clock: ManualClock
) -> None:
    config = deploy_config(deploys={"force_allowed": {"users": ["U0BOB"]}})
    config["apps"]["api"]["environments"]["staging"]["freezes"] = [
        {"start": "2026-11-25T09:00:00Z", "end": "2026-11-25T18:00:00Z", "reason": "release train"}
    ]
    runtime = make_runtime(parse_config(config))
    before = world.service_task_definition("staging")

    message = refusal(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2"))
    assert (
        f"change freeze until {slack_date(datetime(2026, 11, 25, 18, 0, tzinfo=UTC))}: release train"
        in message
    )
    message = refusal(
        runtime,
        Request(app="api", env="staging", actor="U0ALICE", tag="1.0.2", force_reason="hotfix"),
    )
    assert message == "You may not force deploys. Allowed: <@U0BOB>."
    assert world.service_task_definition("staging") == before

    submit(
        runtime,
        Request(app="api", env="staging", actor="U0BOB", tag="1.0.2", force_reason="hotfix"),
    )
    assert world.service_task_definition("staging") != before
    with runtime.sessions() as db:
        [force] = db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "deploy.force"))
        assert force.actor == "U0BOB" and force.detail["overrode"] == ["freeze"]

    clock.advance(hours=9)  # the freeze is over
    runtime2 = make_runtime(parse_config(config))
    world.rollouts.complete("staging")
    runtime2.scheduler.run_due(clock.now())
    submit(runtime2, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.1"))


def test_one_deploy_at_a_time_names_the_holder(runtime: Runtime, world: World) -> None:
    submit(runtime, Request(app="api", env="staging", actor="U0BOB", tag="1.0.2"))
    revisions = world.revisions("api-staging")
    message = refusal(runtime, Request(app="api", env="staging", actor="U0ALICE", tag="1.0.1"))
    assert message.startswith("`api/staging` is busy: deployment #1 (`api` `1.0.2`) by <@U0BOB>")
    assert f"since {slack_date(T0)} is rolling out" in message
    assert world.revisions("api-staging") == revisions
