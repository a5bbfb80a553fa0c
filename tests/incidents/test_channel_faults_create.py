"""Slack's answer to making an incident's channel lost, and invites Slack refuses.

A `conversations.create` that Slack carries out but whose answer never comes (a
timeout, a 5xx after the work) leaves the channel made: the next start adopts
that channel, by the name the lost call asked for, rather than making `-2`
beside an orphan. An invite Slack refuses is named in the answer and counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa

from bot.incidents import render
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from tests.incidents.helpers import click, incident_row, outbox_idle, responses_to
from tests.incidents.test_channels import NAME, channel_config, declare
from tests.support import LiveService, metric, wait_for

CHANNELS = "opsbot_incident_channels_total"


def only_incident(service: LiveService) -> Incident | None:
    with service.runtime.sessions() as db:
        return db.scalars(sa.select(Incident)).first()


@pytest.fixture
def declared(
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> tuple[LiveService, int]:
    """A service with an incident declared (no channel yet), paged in PagerDuty."""
    service = make_service(settings, channel_config())
    declare(service, slack)
    row = wait_for(lambda: only_incident(service))
    wait_for(lambda: pagerduty.incidents_for(row.dedup_key))
    wait_for(lambda: outbox_idle(service))
    return service, 1


def said(slack: SlackEmulator, url: str) -> str:
    return " ".join(str(r.get("text")) for r in responses_to(slack, url))


def set_up(service: LiveService, incident_id: int) -> str | None:
    with service.runtime.sessions() as db:
        found = db.get(Incident, incident_id)
        return found.slack_channel_id if found is not None and found.has_channel else None


def start_channel(service: LiveService, slack: SlackEmulator, incident_id: int) -> str:
    url = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=url)
    return url


def made_named(slack: SlackEmulator, prefix: str) -> list[dict[str, Any]]:
    return [c for c in slack.channels.values() if str(c["name"]).startswith(prefix)]


def adopted_after(
    service: LiveService, slack: SlackEmulator, incident_id: int, first: str, made: str
) -> None:
    """The second start takes the channel the first made unheard; nothing beside it."""
    assert incident_row(service, incident_id).slack_channel_name == made
    second = start_channel(service, slack, incident_id)
    channel = wait_for(lambda: set_up(service, incident_id))
    wait_for(lambda: f"Started <#{channel}>" in said(slack, second))
    wait_for(lambda: outbox_idle(service))

    assert slack.channels[channel]["name"] == made
    assert [c["name"] for c in made_named(slack, made)] == [made]  # no -2
    assert incident_row(service, incident_id).slack_channel_name == made
    assert "U0BOB" in slack.channels[channel]["members"]
    assert slack.pins(channel)
    assert metric(service, CHANNELS, outcome="unanswered") == 1
    assert metric(service, CHANNELS, outcome="adopted") == 1
    assert "it may have made" in said(slack, first)


def test_a_create_that_timed_out_is_adopted_by_the_next_start(
    declared: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, incident_id = declared
    # Slack makes the channel, and answers after opsbot's 2 s request timeout.
    slack.faults.hang_next(1, seconds=3, calls=("conversations.create",))
    first = start_channel(service, slack, incident_id)
    wait_for(lambda: "did not answer" in said(slack, first), timeout_s=15)
    [made] = wait_for(lambda: made_named(slack, NAME), timeout_s=15)
    assert set_up(service, incident_id) is None

    adopted_after(service, slack, incident_id, first, str(made["name"]))


def test_a_create_answered_5xx_after_the_work_is_adopted_by_the_next_start(
    declared: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, incident_id = declared
    fault = slack.faults.fail_but_do_next(
        1, status=500, done_after_s=0.2, calls=("conversations.create",)
    )
    first = start_channel(service, slack, incident_id)
    wait_for(lambda: "did not answer" in said(slack, first), timeout_s=15)
    wait_for(lambda: fault.done == 1)
    [made] = made_named(slack, NAME)

    adopted_after(service, slack, incident_id, first, str(made["name"]))


def test_a_taken_name_that_is_not_opsbots_is_not_adopted(
    declared: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, incident_id = declared
    slack.faults.fail_next(1, status=503, calls=("conversations.create",))
    first = start_channel(service, slack, incident_id)
    wait_for(lambda: "did not answer" in said(slack, first), timeout_s=15)
    # Slack made nothing; someone else took the name since, in a channel opsbot is not in.
    slack.add_channel("C0SQUAT", NAME, bot_member=False)

    second = start_channel(service, slack, incident_id)
    channel = wait_for(lambda: set_up(service, incident_id))
    wait_for(lambda: f"Started <#{channel}>" in said(slack, second))
    assert channel != "C0SQUAT"
    assert slack.channels[channel]["name"] == NAME + "-2"
    assert metric(service, CHANNELS, outcome="adopted") == 0


def test_an_invite_slack_refuses_is_named_in_the_answer_and_counted(
    declared: tuple[LiveService, int], slack: SlackEmulator
) -> None:
    service, incident_id = declared
    slack.faults.fail_next(1, status=500, calls=("conversations.invite",))
    url = start_channel(service, slack, incident_id)
    channel = wait_for(lambda: set_up(service, incident_id))
    wait_for(lambda: f"Started <#{channel}>" in said(slack, url))

    assert "Slack refused to invite <@U0BOB> (fatal_error)" in said(slack, url)
    assert "U0BOB" not in (slack.channels[channel]["members"] or [])
    assert metric(service, CHANNELS, outcome="invite_failed") == 1
    with service.runtime.sessions() as db:
        data = db.scalar(sa.text("select data from incident_events where kind = 'channel'"))
    assert "U0BOB" in str(data)
