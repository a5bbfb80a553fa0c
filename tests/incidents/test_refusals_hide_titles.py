"""A refusal tells someone who cannot see an incident nothing of it but its number.

An incident of a private channel, and Mallory, who is not in it: whatever she
types or forges (a command, a click, a menu choice), the answer names the
incident `#N`, never its title, its route or its channel. Someone who can see
the incident still reads its title in the same refusals.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.incidents import render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    audit_of,
    click,
    command,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
)
from tests.support import LiveService, wait_for

TITLE = "prod-payments-card-dump-suspected"
MALLORY = "U0MALLORY"


@pytest.fixture
def private_incident(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> int:
    """An incident posted in a private channel that only Alice is in."""
    slack.add_user(MALLORY, "mallory", email="mallory@example.com")
    slack.add_channel("C0PRODALERTS", "prod-alerts", private=True, members=["U0ALICE"])
    incident_id, _message = page(service, sns_signer, slack, pagerduty, name=TITLE)
    return incident_id


def answer_to(slack: SlackEmulator, send: Callable[[str], Any]) -> str:
    """The one answer (through the response_url) to what `send` sends."""
    url = slack.response_url()
    send(url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    return str(reply["text"]) + str(reply.get("blocks") or "")


def assert_tells_only_the_number(answer: str, incident_id: int) -> None:
    assert f"#{incident_id}" in answer
    for secret in (TITLE, "card-dump", "C0PRODALERTS", "prod-alerts", "route `prod`"):
        assert secret not in answer, answer


@pytest.mark.parametrize(
    "text",
    ["ack {n}", "resolve {n}", "note {n} who pages whom?", "timeline {n}", "timeline {n} markdown"],
)
def test_a_command_on_an_incident_someone_cannot_see_tells_only_its_number(
    service: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    private_incident: int,
    text: str,
) -> None:
    incident_id = private_incident
    answer = answer_to(
        slack,
        lambda url: command(
            service,
            "/incident",
            text.format(n=incident_id),
            user_id=MALLORY,
            response_url=url,
        ),
    )
    assert_tells_only_the_number(answer, incident_id)
    wait_for(lambda: outbox_idle(service))
    assert pd_calls(pagerduty, "PUT") == [] and pd_calls(pagerduty, "POST") == []
    row = incident_row(service, incident_id)
    assert row.acknowledged_at is None and row.status == "open"
    assert [(r.actor, r.outcome) for r in audit_of(service, incident_id)] == [(MALLORY, "refused")]


@pytest.mark.parametrize(
    ("action_id", "value", "option"),
    [
        (render.ACKNOWLEDGE, "{n}", None),
        (render.RESOLVE, "{n}", None),
        (render.ESCALATE, "{n}", None),
        (render.SILENCE, "", "{n}:30m"),
        (render.SILENCE, "", "{n}:" + render.UNSILENCE),
        (render.START_CHANNEL, "{n}", None),
    ],
    ids=["acknowledge", "resolve", "escalate", "silence", "unsilence", "start-channel"],
)
def test_a_forged_click_on_an_incident_someone_cannot_see_tells_only_its_number(
    service: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    private_incident: int,
    action_id: str,
    value: str,
    option: str | None,
) -> None:
    incident_id = private_incident
    answer = answer_to(
        slack,
        lambda url: click(
            service,
            action_id,
            value.format(n=incident_id),
            user_id=MALLORY,
            response_url=url,
            selected_option=option.format(n=incident_id) if option else None,
        ),
    )
    assert_tells_only_the_number(answer, incident_id)
    wait_for(lambda: outbox_idle(service))
    assert pd_calls(pagerduty, "PUT") == []
    row = incident_row(service, incident_id)
    assert row.silenced_until is None and row.slack_channel_id is None
    assert [(r.actor, r.outcome) for r in audit_of(service, incident_id)] == [(MALLORY, "refused")]


def test_someone_who_can_see_the_incident_reads_its_title_in_a_refusal(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    # A public channel Bob is not in: he sees it, but only its members respond.
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    incident_id, _message = page(service, sns_signer, slack, pagerduty, name=TITLE)
    answer = answer_to(
        slack,
        lambda url: command(
            service, "/incident", f"ack {incident_id}", user_id="U0BOB", response_url=url
        ),
    )
    assert f"You may not acknowledge #{incident_id} ({TITLE})" in answer
    assert "members of <#C0PRODALERTS>" in answer


@pytest.fixture
def mallory_responds() -> Config:
    """The paging route names Mallory among its responders, though she is not in its channel."""
    routes = [dict(r) for r in TEST_CONFIG["alarm_routes"]]
    routes[0]["rights"] = {"respond": {"channel_members": True, "users": [MALLORY]}}
    return parse_config({**TEST_CONFIG, "alarm_routes": routes})


def test_a_responder_who_cannot_see_the_incident_hears_only_its_number(
    settings: Settings,
    mallory_responds: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.add_user(MALLORY, "mallory", email="mallory@example.com")
    slack.add_channel("C0PRODALERTS", "prod-alerts", private=True, members=["U0ALICE"])
    service = make_service(settings, mallory_responds)
    incident_id, _message = page(service, sns_signer, slack, pagerduty, name=TITLE)
    command(service, "/incident", f"ack {incident_id}", response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None)

    answer = answer_to(
        slack,
        lambda url: command(
            service, "/incident", f"ack {incident_id}", user_id=MALLORY, response_url=url
        ),
    )
    assert f"#{incident_id} was already acknowledged" in answer
    assert_tells_only_the_number(answer, incident_id)


def test_a_responder_who_cannot_see_the_incident_is_not_told_its_own_channel(
    settings: Settings,
    mallory_responds: Config,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.add_user(MALLORY, "mallory", email="mallory@example.com")
    slack.add_channel("C0PRODALERTS", "prod-alerts", private=True, members=["U0ALICE"])
    service = make_service(settings, mallory_responds)
    incident_id, _message = page(service, sns_signer, slack, pagerduty, name=TITLE)
    click(service, render.START_CHANNEL, str(incident_id), response_url=slack.response_url())
    channel = wait_for(lambda: incident_row(service, incident_id).slack_channel_id)
    # Its setup done too: until then a second click hears that it is being started.
    wait_for(lambda: incident_row(service, incident_id).has_channel)

    answer = answer_to(
        slack,
        lambda url: click(
            service, render.START_CHANNEL, str(incident_id), user_id=MALLORY, response_url=url
        ),
    )
    assert answer == f"Incident #{incident_id} already has its channel."
    assert channel not in answer
