"""The alerts of a rollout in trouble carry an ECR tag of an attacker's inert.

A tag can say `@here`: in the release channel's alerts and notifications (the
top-level text Slack reads with its automatic parsing) it must stay a word, not
a broadcast. The deployments go through `submit`, ECS and the outbox, and what
reaches the Slack emulator is judged by tests/slack_checks.py.
"""

from __future__ import annotations

from bot.clock import ManualClock
from bot.deploys.plans import Request
from bot.deploys.requests import submit
from bot.runtime import Runtime
from sandbox.slack import Message, SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.test_watch import status_of, tick
from tests.deploys.world import World, manifest
from tests.slack_checks import inert_problems
from tests.support import wait_for

TAG = "v1-@here"


def hostile_deploy(runtime: Runtime, world: World) -> int:
    world.aws("ecr").put_image(repositoryName="api", imageManifest=manifest(78), imageTag=TAG)
    accepted = submit(runtime, Request(app="api", env="staging", actor="U0ALICE", tag=TAG))
    assert accepted.deployment_id is not None
    return accepted.deployment_id


def alert(releases: SlackEmulator, words: str) -> Message:
    [found] = wait_for(lambda: [m for m in releases.channel_messages(RELEASES) if words in m.text])
    return found


def assert_all_inert(releases: SlackEmulator) -> None:
    messages = [
        *releases.channel_messages(RELEASES),
        *(r for m in releases.channel_messages(RELEASES) for r in releases.thread(RELEASES, m.ts)),
    ]
    assert messages
    for message in messages:
        assert inert_problems(message.text, message.blocks) == [], message.text


def test_a_stuck_alert_and_the_announcement_keep_a_tags_here_inert(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    deployment_id = hostile_deploy(runtime, world)
    world.rollouts.progress("staging", running=1, pending=1)
    for _ in range(62):
        tick(runtime, clock)
    assert status_of(runtime, deployment_id).status == "stuck"

    stuck = alert(releases, "has not moved")
    assert stuck.text.startswith(":warning: Deploy stuck: api v1-@\u200bhere to api/staging: ")
    assert stuck.text.count(":warning:") == 1
    wait_for(lambda: "STUCK" in str(releases.channel_messages(RELEASES)[0].blocks))
    assert_all_inert(releases)


def test_the_alert_for_a_service_gone_says_it_was_not_found_and_keeps_a_tags_here_inert(
    runtime: Runtime, world: World, clock: ManualClock, releases: SlackEmulator
) -> None:
    deployment_id = hostile_deploy(runtime, world)
    world.rollouts.progress("staging", running=1, pending=1)
    tick(runtime, clock)
    world.aws("ecs").delete_service(cluster="staging", service="api", force=True)
    for _ in range(61):
        tick(runtime, clock)
    assert status_of(runtime, deployment_id).status == "stuck"

    blind = alert(releases, "cannot read ECS")
    assert blind.text.startswith(":warning: Deploy stuck: api v1-@\u200bhere to api/staging: ")
    assert "opsbot cannot read ECS: its service was not found (`ServiceNotFound`)" in blind.text
    assert blind.text.count(":warning:") == 1
    assert_all_inert(releases)
