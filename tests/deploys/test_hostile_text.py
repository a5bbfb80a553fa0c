"""/deploy, /rollback and /releases fed by an attacker: typed tags, apps and reasons, ECR
tags and ECS's stop reasons reach Slack as text (no ping, no link), within Slack's limits.

Everything goes through the signed HTTP edge and comes back through the Slack emulator
(response_urls, the release channel and its threads), as in test_slack.py.
"""

from __future__ import annotations

from typing import Any

from bot.clock import ManualClock
from handlers.deploys import LOCK_REASON_MAX
from sandbox.slack import Message, SlackEmulator
from tests.deploys.conftest import RELEASES
from tests.deploys.test_slack import answered, command
from tests.deploys.world import World, manifest
from tests.slack_checks import inert_problems, texts
from tests.support import LiveService, wait_for

PINGS = "<!channel> <!here> <@U0BOB> <https://evil.example|Runbook>"


def assert_inert(
    text: str | None, blocks: list[dict[str, Any]] | None = None, *, typed: str = "<@U0BOB>"
) -> str:
    """What Slack got is inert and within its limits; returns every text it shows.

    `typed` is the user mention the attacker wrote: it must be text too.
    """
    assert inert_problems(text, blocks) == []
    shown = "\n".join(texts(text, blocks))
    assert typed not in shown
    return shown


def release_messages(slack: SlackEmulator) -> list[Message]:
    return [
        *slack.channel_messages(RELEASES),
        *(r for m in slack.channel_messages(RELEASES) for r in slack.thread(RELEASES, m.ts)),
    ]


def test_typed_apps_tags_and_environments_are_echoed_inert(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    ack, url = command(live, releases, "/deploy", f"api staging {PINGS.replace(' ', '_')}")
    shown = assert_inert(ack["text"])
    assert "Checking `&lt;!channel&gt;_&lt;!here&gt;" in shown
    answer = answered(releases, url)
    assert assert_inert(answer).startswith("There is no image `&lt;!channel&gt;_")
    assert "Most recent tags in `api`: `1.0.4`" in answer

    for name, text in (
        ("/deploy", "<!here> staging 1.0.2"),
        ("/deploy", "status api <https://evil.example|prod>"),
        ("/rollback", "api <!channel>"),
        ("/releases", "<!everyone>"),
        ("/deploy", "lock api <!channel> <!here>"),
    ):
        ack, url = command(live, releases, name, text)
        assert_inert(ack.get("text"))
        answer = answered(releases, url)
        assert_inert(answer)
        assert answer.startswith("Unknown ")
    assert releases.channel_messages(RELEASES) == []


def test_a_hostile_lock_reason_is_inert_wherever_it_is_shown_and_cut_to_fit(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    # Markup and entities to the longest reason taken (longer is refused at once).
    reason = (f"{PINGS} & " * 400)[:LOCK_REASON_MAX]
    _, url = command(live, releases, "/deploy", f"lock api staging {reason}")
    assert_inert(answered(releases, url))
    [notice] = wait_for(lambda: releases.channel_messages(RELEASES))
    shown = assert_inert(notice.text, notice.blocks)
    assert (
        ': "&lt;!channel&gt; &lt;!here&gt; &lt;@U0BOB&gt; &lt;https://evil.example|Runbook&gt;'
        in (shown)
    )
    assert len(notice.text) <= 3000

    _, url = command(live, releases, "/deploy", "status api staging", user="U0BOB")
    status = answered(releases, url)
    assert_inert(status)
    assert "locked by <@U0ALICE>" in status and len(status) <= 8000
    _, url = command(live, releases, "/deploy", "api staging 1.0.2", user="U0BOB")
    refusal = answered(releases, url)
    assert_inert(refusal)
    assert refusal.startswith("`api/staging` is locked by <@U0ALICE>")


def test_a_hostile_force_reason_and_ecr_tag_reach_the_announcement_and_confirmation_inert(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    tag = "9.9.9-<!here>"
    world.aws("ecr").put_image(repositoryName="api", imageManifest=manifest(77), imageTag=tag)
    _, url = command(live, releases, "/releases", "api")
    listing = answered(releases, url)
    assert "`9.9.9-&lt;!here&gt;`" in assert_inert(listing)

    # 1.0.0 runs already: only a forced deploy redeploys it, with its reason shown.
    _, url = command(live, releases, "/deploy", f'api staging 1.0.0 --force "{PINGS}"')
    assert_inert(answered(releases, url))
    announcement = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "Deploying" in m.text]
    )[0]
    shown = assert_inert(announcement.text, announcement.blocks)
    assert "*Forced* (redeploy)\n>&lt;!channel&gt; &lt;!here&gt;" in shown

    _, url = command(live, releases, "/deploy", f"api prod {tag}")
    assert_inert(answered(releases, url))
    _, url = command(live, releases, "/deploy", f'api prod 1.0.0 --force "{PINGS}"')
    assert_inert(answered(releases, url))
    asked = wait_for(
        lambda: (
            len(
                requests := [
                    m for m in releases.channel_messages(RELEASES) if "Request #" in m.text
                ]
            )
            == 2
            and requests
        )
    )
    tagged, forced = sorted(asked, key=lambda m: m.text)
    shown = assert_inert(tagged.text, tagged.blocks)
    assert "asks to *deploy* `api` `9.9.9-&lt;!here&gt;` to `api/prod`" in shown
    shown = assert_inert(forced.text, forced.blocks)
    assert "*Forced* (redeploy): &lt;!channel&gt; &lt;!here&gt;" in shown


def test_ecs_stop_reasons_from_the_tasks_reach_the_thread_inert(
    live: LiveService, releases: SlackEmulator, world: World, clock: ManualClock
) -> None:
    _, url = command(live, releases, "/deploy", "api staging 1.0.2")
    assert "started" in answered(releases, url)
    world.rollouts.fail("staging", reasons=[f"Essential container exited: {PINGS}" * 40])
    clock.advance(seconds=10)
    live.runtime.scheduler.run_due(clock.now())

    failed = wait_for(
        lambda: [m for m in release_messages(releases) if "Essential container" in m.text]
    )
    for message in failed:
        shown = assert_inert(message.text, message.blocks)
        assert "exited: &lt;!channel&gt;" in shown
    wait_for(lambda: "Deploy failed" in releases.channel_messages(RELEASES)[0].text)
    [announcement] = [m for m in releases.channel_messages(RELEASES) if "Deploy" in m.text]
    assert_inert(announcement.text, announcement.blocks)
