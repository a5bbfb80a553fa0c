"""The postmortem draft of an incident's channel lists what changed before its alarm.

The changes tests' world (moto ECS/ECR, AppConfig) with `api/prod` claiming the
alarm: a real deploy through /deploy's entry point, the alarm signed at /sns,
Start a channel and the resolve as Slack sends them.
"""

from __future__ import annotations

from bot.clock import ManualClock
from bot.incidents import render
from bot.incidents.models import Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.changes.conftest import (  # noqa: F401  # the changes tests' fixtures
    CLAIMED,
    app_config,
    aws_settings,
    clock,
    flag_config,
    flag_world,
    live,
    make_runtime,
    protected,
    releases,
    runtime,
    world,
)
from tests.changes.test_changes import alarm, deploy
from tests.deploys.world import World
from tests.incidents.helpers import click, command
from tests.support import LiveService, wait_for


def test_the_postmortem_draft_lists_the_deploy_before_the_alarm(
    live: LiveService,  # noqa: F811
    world: World,  # noqa: F811
    clock: ManualClock,  # noqa: F811
    releases: SlackEmulator,  # noqa: F811
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    deploy(live.runtime, world, clock, "1.0.1", actor="U0ALICE")
    clock.advance(minutes=5)
    incident, _message = alarm(live, sns_signer, releases, CLAIMED)
    wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    click(live, render.START_CHANNEL, str(incident.id), response_url=releases.response_url())

    def channel() -> str | None:
        with live.runtime.sessions() as db:
            found = db.get(Incident, incident.id)
            return found.slack_channel_id if found is not None and found.has_channel else None

    created = wait_for(channel)
    command(
        live,
        "/incident",
        f"resolve {incident.id} rolled back",
        response_url=releases.response_url(),
        channel_id=created,
    )
    draft = wait_for(
        lambda: next(
            (m for m in releases.channel_messages(created) if "Postmortem draft" in m.text), None
        )
    )
    assert "| change: deploy 1.0.1 (was 1.0.0) by @Alice Example in api/prod, completed |" in (
        draft.text
    )
    # Sorted into the timeline: the deploy comes before the alarm it caused.
    assert draft.text.index("change: deploy 1.0.1") < draft.text.index("alarm OK → ALARM")
