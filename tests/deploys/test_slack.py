"""/deploy, /rollback, /releases and the confirmation buttons, through Slack's HTTP edge.

Requests are signed as Slack signs them and posted to the live service; the
answers come back through the Slack emulator (response_urls, messages).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from bot.approvals.models import PendingAction
from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.deploys.models import Deployment
from bot.slack_dates import slack_date
from sandbox.slack import Message, SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET
from tests.deploys.conftest import RELEASES, T0
from tests.deploys.world import World, manifest
from tests.support import (
    LiveService,
    block_action_body,
    slack_headers,
    slash_command_body,
    wait_for,
)


def command(
    live: LiveService, slack: SlackEmulator, name: str, text: str, *, user: str = "U0ALICE"
) -> tuple[dict[str, Any], str]:
    """Send a slash command; return the immediate ack and the url later answers go to."""
    url = slack.response_url()
    body = slash_command_body(name, text, user_id=user, response_url=url)
    answer = live.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert answer.status_code == 200
    if answer.headers.get("content-type", "").startswith("application/json"):
        return answer.json(), url
    return {"text": answer.text}, url


def click(
    live: LiveService, slack: SlackEmulator, action_id: str, request_id: int, *, user: str
) -> str:
    url = slack.response_url()
    body = block_action_body(
        action_id, str(request_id), user_id=user, channel_id=RELEASES, response_url=url
    )
    answer = live.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert answer.status_code == 200
    return url


def answered(slack: SlackEmulator, url: str) -> str:
    path = url.split("://", 1)[1].split("/", 1)[1]
    found = wait_for(lambda: [r for r in slack.responses if r["url"] == "/" + path])
    return str(found[-1]["text"])


def confirmation(slack: SlackEmulator) -> Message:
    return wait_for(
        lambda: next(
            (m for m in slack.channel_messages(RELEASES) if m.text.startswith("Request #")), None
        )
    )


def buttons(message: Message) -> list[str]:
    blocks = message.blocks or []
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]]


def test_an_unauthorised_user_is_refused_and_nothing_changes(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    ack, url = command(live, releases, "/deploy", "api staging 1.0.2", user="U0CAROL")
    assert "Checking `1.0.2` for `api/staging`" in ack["text"]
    assert answered(releases, url) == (
        "You may not deploy to `api/staging`. Allowed: <@U0ALICE>, <@U0BOB>."
    )
    assert world.service_task_definition("staging") == world.task_definitions["staging"]
    assert world.revisions("api-staging") == [world.task_definitions["staging"]]
    assert world.rollouts.deployments("staging")[0]["rolloutState"] == "COMPLETED"
    with live.runtime.sessions() as db:
        assert db.scalars(sa.select(Deployment)).all() == []
        [refused] = db.scalars(sa.select(AuditRecord)).all()
        assert (refused.actor, refused.action, refused.outcome) == (
            "U0CAROL",
            "deploy.request",
            "refused",
        )
    assert releases.channel_messages(RELEASES) == []


def test_a_protected_deploy_waits_for_confirmation_and_a_second_person(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    _, url = command(live, releases, "/deploy", "api prod 1.0.2")
    assert "request #1 waits for your confirmation and the approval of a second person" in (
        answered(releases, url)
    )
    message = confirmation(releases)
    assert buttons(message) == ["approval_confirm", "approval_approve", "approval_cancel"]
    details = str(message.blocks)
    assert "<@U0ALICE> asks to *deploy* `api` `1.0.2` to `api/prod`" in details
    assert "findings: HIGH 1 · LOW 1" in details
    assert world.service_task_definition("prod") == world.task_definitions["prod"]

    # Nobody approves their own request.
    url = click(live, releases, "approval_approve", 1, user="U0ALICE")
    assert answered(releases, url) == (
        "You cannot approve your own request: a different person must approve it."
    )
    # Only the requester confirms; Bob (a deployer through the group) may approve.
    url = click(live, releases, "approval_confirm", 1, user="U0BOB")
    assert (
        answered(releases, url)
        == "Only <@U0ALICE> can confirm their own request: you can approve it."
    )
    url = click(live, releases, "approval_confirm", 1, user="U0ALICE")
    assert "approvals 0 of 1" in answered(releases, url)
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    # Someone who may not deploy to prod cannot approve.
    url = click(live, releases, "approval_approve", 1, user="U0CAROL")
    assert answered(releases, url).startswith("You may not approve deploys to `api/prod`.")

    url = click(live, releases, "approval_approve", 1, user="U0BOB")
    assert answered(releases, url).startswith("Deploy #1 of `api` `1.0.2` to `api/prod` started")
    assert world.service_task_definition("prod").endswith("api-prod:2")
    wait_for(
        lambda: ":white_check_mark: Deploy #1" in str(releases.channel_messages(RELEASES)[0].blocks)
    )
    assert buttons(releases.channel_messages(RELEASES)[0]) == []
    with live.runtime.sessions() as db:
        deployment = db.get(Deployment, 1)
        assert deployment is not None and deployment.approved_by == ["U0BOB"]
        records = db.scalars(sa.select(AuditRecord).order_by(AuditRecord.id)).all()
        assert [(r.action, r.actor, r.outcome) for r in records] == [
            ("approval.request", "U0ALICE", "ok"),
            ("approval.approve", "U0ALICE", "refused"),
            ("approval.confirm", "U0BOB", "refused"),
            ("approval.confirm", "U0ALICE", "ok"),
            ("approval.approve", "U0CAROL", "refused"),
            ("approval.approve", "U0BOB", "ok"),
            ("deploy.start", "U0ALICE", "ok"),
        ]


def test_a_cancelled_request_deploys_nothing(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    command(live, releases, "/deploy", "api prod 1.0.2")
    confirmation(releases)
    url = click(live, releases, "approval_cancel", 1, user="U0ALICE")
    assert answered(releases, url) == "Cancelled request #1."
    wait_for(
        lambda: "Cancelled by <@U0ALICE>" in str(releases.channel_messages(RELEASES)[0].blocks)
    )
    url = click(live, releases, "approval_approve", 1, user="U0BOB")
    assert answered(releases, url) == "Request #1 is already cancelled."
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert action.status == "cancelled" and action.decided_by == "U0ALICE"


def test_an_unanswered_request_expires(
    live: LiveService, releases: SlackEmulator, world: World, clock: ManualClock
) -> None:
    command(live, releases, "/deploy", "api prod 1.0.2")
    confirmation(releases)
    clock.advance(minutes=30)
    assert live.runtime.scheduler.run_due(clock.now()) == ["approval-expire-1"]
    wait_for(
        lambda: (
            f"Expired at {slack_date(datetime(2026, 11, 25, 10, 30, tzinfo=UTC))}"
            in str(releases.channel_messages(RELEASES)[0].blocks)
        )
    )
    url = click(live, releases, "approval_confirm", 1, user="U0ALICE")
    assert answered(releases, url) == "Request #1 is already expired."
    assert world.service_task_definition("prod") == world.task_definitions["prod"]


def test_a_freeze_in_slack_names_itself_and_force_goes_through_with_its_reason(
    live: LiveService, releases: SlackEmulator, world: World, clock: ManualClock
) -> None:
    clock.advance(days=2)  # Black Friday freeze on prod
    _, url = command(live, releases, "/deploy", "api prod 1.0.2")
    text = answered(releases, url)
    assert (
        f"`api/prod` is in a change freeze until {slack_date(datetime(2026, 11, 30, 0, 0, tzinfo=UTC))}: Black Friday."
        in text
    )
    assert '--force "<reason>"' in text

    _, url = command(
        live, releases, "/deploy", "api prod 1.0.2 --force \u201cpayment outage INC-9\u201d"
    )
    assert "request #1 waits" in answered(releases, url)
    message = confirmation(releases)
    assert "*Forced* (freeze): payment outage INC-9" in str(message.blocks)
    assert "approvals 0 of 1" in answered(
        releases, click(live, releases, "approval_confirm", 1, user="U0ALICE")
    )
    url = click(live, releases, "approval_approve", 1, user="U0BOB")
    assert "started" in answered(releases, url)
    with live.runtime.sessions() as db:
        force = db.scalars(sa.select(AuditRecord).where(AuditRecord.action == "deploy.force")).one()
        assert force.detail["reason"] == "payment outage INC-9"
        assert force.detail["overrode"] == ["freeze"]
    announcement = wait_for(
        lambda: [m for m in releases.channel_messages(RELEASES) if "Deploying" in m.text]
    )
    assert "payment outage INC-9" in json.dumps(announcement[0].blocks)


def test_status_history_releases_lock_and_rollback_answer_in_slack(
    live: LiveService, releases: SlackEmulator, world: World, clock: ManualClock
) -> None:
    _, url = command(live, releases, "/deploy", "api staging 1.0.1")
    assert answered(releases, url).startswith("Deploy #1 of `api` `1.0.1` to `api/staging` started")
    world.rollouts.complete("staging")
    clock.advance(seconds=10)
    live.runtime.scheduler.run_due(clock.now())

    _, url = command(live, releases, "/deploy", "status api staging")
    assert "now: `api-staging:2`" in answered(releases, url)
    _, url = command(live, releases, "/deploy", "history api staging 5")
    assert f"#1 {slack_date(T0)} · deploy `1.0.1`" in answered(releases, url)
    _, url = command(live, releases, "/releases", "api")
    assert "running in *staging*" in answered(releases, url)
    _, url = command(live, releases, "/deploy", 'lock api staging "load test, back at 3"')
    assert "is locked" in answered(releases, url)
    _, url = command(live, releases, "/rollback", "api staging", user="U0BOB")
    assert "locked by <@U0ALICE>" in answered(releases, url)
    _, url = command(live, releases, "/deploy", "unlock api staging")
    assert answered(releases, url) == "Unlocked `api/staging`."
    _, url = command(live, releases, "/rollback", "api staging", user="U0BOB")
    assert "No successful deployment of `api/staging` before the one running now (#1)" in (
        answered(releases, url)
    )

    ack, _ = command(live, releases, "/deploy", "api staging")
    assert ack["text"].startswith(
        '`/deploy &lt;app&gt; &lt;env&gt; &lt;tag&gt; [--force "&lt;reason&gt;"]`.'
    )
    ack, _ = command(live, releases, "/deploy", "api staging 1.0.2 --force")
    assert ack["text"].startswith("`--force` needs a reason")


def test_what_was_approved_is_what_deploys_even_if_the_tag_moves(
    live: LiveService, releases: SlackEmulator, world: World
) -> None:
    """moto deletes an image whose only tag is pushed again (ECR would keep it untagged):
    the approved digest is gone, so the approval deploys nothing rather than the new image."""
    command(live, releases, "/deploy", "api prod 1.0.2")
    confirmation(releases)
    world.aws("ecr").put_image(repositoryName="api", imageManifest=manifest(42), imageTag="1.0.2")
    assert "approvals 0 of 1" in answered(
        releases, click(live, releases, "approval_confirm", 1, user="U0ALICE")
    )
    url = click(live, releases, "approval_approve", 1, user="U0BOB")
    short = world.digests["1.0.2"].removeprefix("sha256:")[:12]
    assert answered(releases, url) == (
        f"The image that was asked for (`1.0.2`, `{short}`) is no longer in `api`: ask again."
    )
    assert world.service_task_definition("prod") == world.task_definitions["prod"]
    with live.runtime.sessions() as db:
        [action] = db.scalars(sa.select(PendingAction)).all()
        assert action.status == "failed"
