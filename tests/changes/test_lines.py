"""What a change's line says: the version a deploy replaced, a flag's values escaped once.

`api/prod` keeps its flags as SSM parameters here (test_flag_rolls.py), so
whatever a parameter held before `/flag on` is the "before" of the change.
"""

from __future__ import annotations

from datetime import timedelta

from bot.changes import render
from bot.changes.service import changes_view
from bot.clock import ManualClock
from bot.deploys.models import COMPLETED, DEPLOY, Deployment
from bot.incidents import render as incident_render
from bot.incidents.models import Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import CLAIMED
from tests.changes.test_changes import alarm, deploy, flip
from tests.changes.test_flag_rolls import app_config  # noqa: F401  # SSM flags on api/prod
from tests.deploys.world import World, task_definition
from tests.flags.conftest import SERVICE_NAME, FlagWorld
from tests.incidents.helpers import click, command, message_text
from tests.support import LiveService, wait_for

UNTAGGED = "sha256:" + "c" * 64  # an image ECR does not hold: no tag to find for it


def test_a_deploy_from_an_untagged_image_names_its_digest_not_the_account(
    live: LiveService,
    world: World,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
) -> None:
    ecs = world.aws("ecs")
    image = f"{world.repository_uri}@{UNTAGGED}"
    arn = ecs.register_task_definition(**task_definition("api-prod", image))["taskDefinition"][
        "taskDefinitionArn"
    ]
    ecs.update_service(cluster="prod", service="api", taskDefinition=arn)
    world.rollouts.complete("prod")
    deploy(live.runtime, world, clock, "1.0.2", actor="U0ALICE")
    clock.advance(minutes=5)

    _, message = alarm(live, sns_signer, releases, CLAIMED)
    text = message_text(message)
    assert "Deploy `1.0.2` (from `cccccccccccc`) by <@U0ALICE>" in text
    account = world.repository_uri.split(".", 1)[0]
    assert f"`{account}`" not in text


def test_a_deploy_with_no_previous_image_recorded_says_nothing_of_where_it_came_from(
    live: LiveService, clock: ManualClock
) -> None:
    now = clock.now()
    with live.runtime.sessions() as db:
        db.add(
            Deployment(
                app="api",
                env="prod",
                kind=DEPLOY,
                status=COMPLETED,
                actor="U0ALICE",
                tag="2.0.0",
                image=f"api@{UNTAGGED}",
                digest=UNTAGGED,
                previous_image=None,
                previous_tag=None,
                created_at=now,
            )
        )
        db.flush()
        view = changes_view(
            db,
            app="api",
            env="prod",
            alarm_at=now + timedelta(minutes=1),
            window_min=30,
            incident_id=None,
            now=now + timedelta(minutes=1),
        )
        [item] = view.items
        assert item.before is None
        section = render.changes_blocks(view, incident_id=1)[0]["text"]["text"]
        assert "Deploy `2.0.0` by <@U0ALICE>" in section and "(from" not in section


def test_a_flag_value_with_markup_is_escaped_once_on_the_message_and_the_postmortem(
    live: LiveService,
    world: World,
    flag_world: FlagWorld,
    clock: ManualClock,
    releases: SlackEmulator,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    flag_world.aws("ssm").put_parameter(
        Name=f"/service/{SERVICE_NAME}/feature-flag/APPLE_PAY",
        Value="a<b & c",
        Type="String",
        Overwrite=True,
    )
    answer = flip(live.runtime, "on", "apple_pay", actor="U0ALICE")
    assert "is now" in answer, answer
    clock.advance(minutes=5)

    incident, message = alarm(live, sns_signer, releases, CLAIMED)
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    text = message_text(message)
    assert "`APPLE_PAY` `a&lt;b &amp; c` → `true`" in text, text
    assert "&amp;lt;" not in text and "&amp;amp;" not in text

    # The postmortem draft of the incident's channel: a code block, escaped once too.
    click(
        live,
        incident_render.START_CHANNEL,
        str(incident.id),
        response_url=releases.response_url(),
    )

    def channel() -> str | None:
        with live.runtime.sessions() as db:
            found = db.get(Incident, incident.id)
            return found.slack_channel_id if found is not None and found.has_channel else None

    created = wait_for(channel)
    command(
        live,
        "/incident",
        f"resolve {incident.id} flag",
        response_url=releases.response_url(),
        channel_id=created,
    )
    draft = wait_for(
        lambda: next(
            (m for m in releases.channel_messages(created) if "Postmortem draft" in m.text), None
        )
    )
    assert "change: flag APPLE_PAY (was a&lt;b &amp; c) by" in draft.text, draft.text
    assert "&amp;lt;" not in draft.text
