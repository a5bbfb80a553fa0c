"""A storm's parent message follows what people do to its alarms, not only the alarms.

Each line of the parent says whether its alarm's incident is acknowledged (and by whom)
or resolved; a click in Slack (or a change in PagerDuty) changes that as surely as an
alarm's transition does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.config import parse_config
from bot.incidents import render
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import click
from tests.support import LiveService, wait_for

CHANNEL = "C0PRODALERTS"
NAMES = ["prod-svc-a", "prod-svc-b", "prod-svc-c"]


def grouped(service: LiveService, slack: SlackEmulator, sns_signer: SnsSigner) -> Message:
    """Three alarms open together on route `prod`: one parent lists them."""
    slack.set_channel_members(CHANNEL, ["U0ALICE"])
    for n, name in enumerate(NAMES):
        assert send(service, sns_signer, alarm(name, "ALARM", T0 + timedelta(seconds=n))) == 200
    parents: list[Message] = wait_for(
        lambda: [m for m in slack.channel_messages(CHANNEL) if "alarms on" in m.text]
    )
    [parent] = parents
    wait_for(lambda: "3 alarms on prod, 3 in ALARM" in parent.text)
    return parent


def incident_ids(service: LiveService) -> dict[str, int]:
    with service.runtime.sessions() as db:
        return {i.alarm_name or "": i.id for i in db.scalars(sa.select(Incident))}


def test_acknowledging_and_resolving_a_grouped_alarm_shows_in_its_group_s_message(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    alarms = {**TEST_CONFIG["alarms"], "group_above": 1, "group_window_s": 600}
    service = make_service(settings, parse_config({**TEST_CONFIG, "alarms": alarms}))
    parent = grouped(service, slack, sns_signer)
    wait_for(lambda: outbox_empty(service))
    ids = incident_ids(service)

    click(service, render.ACKNOWLEDGE, str(ids["prod-svc-a"]), response_url=slack.response_url())
    wait_for(
        lambda: (
            f"prod-svc-a · #{ids['prod-svc-a']} (in the channel) · acknowledged by <@U0ALICE>"
            in str(parent.blocks)
        )
    )
    click(service, render.RESOLVE, str(ids["prod-svc-b"]), response_url=slack.response_url())
    wait_for(
        lambda: (
            f"prod-svc-b · #{ids['prod-svc-b']} (in this thread) · resolved" in str(parent.blocks)
        )
    )
    # The alarm itself still fires: the headline counts it.
    assert "3 alarms on prod, 3 in ALARM" in parent.text
    assert "acknowledged by <@U0ALICE>" in str(parent.blocks)
