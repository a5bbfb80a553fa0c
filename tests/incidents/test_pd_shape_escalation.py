"""Escalate, against PagerDuty's real REST shape: no incident object says its level.

The level is worked out from the incident's assignees and who is on call on its
escalation policy (GET /oncalls). When PagerDuty moved the page by itself, Escalate
asks for the level after that one; when no assignee is on call on the policy, the
level after the one opsbot knew is asked for, and the thread and the person are told.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import SecretStr

from bot.config import parse_config
from bot.incidents import render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    audit_of,
    click,
    events_of,
    incident_row,
    message_text,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
)
from tests.incidents.test_silence_and_escalation import thread_of
from tests.support import LiveService, metric, wait_for

SECRET = "whsec-levels"


@pytest.fixture
def three_levels(pagerduty: PagerDutyEmulator) -> PagerDutyEmulator:
    """The test policy with a third level (Carol), and Dave, on call nowhere."""
    pagerduty.add_user("PCAROL", "Carol Example", "carol@example.com")
    pagerduty.add_user("PDAVE", "Dave Example", "dave@example.com")
    pagerduty.add_oncall(policy_id="PPOLICY", level=3, user_id="PCAROL")
    return pagerduty


def levels_asked(pagerduty: PagerDutyEmulator) -> list[int]:
    return [
        int(put["body"]["incident"]["escalation_level"])
        for put in pd_calls(pagerduty, "PUT")
        if "escalation_level" in put["body"]["incident"]
    ]


def test_rest_answers_carry_no_level_and_name_the_number_incident_number(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    rest = service.runtime.pagerduty
    assert rest is not None
    found = rest.find_incident_by_key(incident_row(service, incident_id).dedup_key)
    assert found is not None
    assert "escalation_level" not in found and "number" not in found
    assert found["incident_number"] == 1
    assert "escalation_level" not in rest.get_incident(str(found["id"]))


def test_escalate_after_pagerduty_escalated_by_itself_wakes_the_level_above(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    three_levels: PagerDutyEmulator,
) -> None:
    pagerduty = three_levels
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    # Nobody acknowledged: PagerDuty's policy paged level 2 (Bob). No webhook told opsbot.
    pagerduty.escalate_by_itself(pd_incident["id"], level=2)

    url = slack.response_url()
    click(service, render.ESCALATE, str(incident_id), response_url=url)
    wait_for(lambda: levels_asked(pagerduty))
    wait_for(lambda: outbox_idle(service))
    assert levels_asked(pagerduty) == [3]
    assert pagerduty.incidents[pd_incident["id"]]["escalation_level"] == 3
    # Who is on call on the incident's policy was asked.
    asked = [c["query"].get("escalation_policy_ids[]") for c in pd_calls(pagerduty, "GET", "/")]
    assert ["PPOLICY"] in asked

    wait_for(lambda: "level 3" in message_text(message))
    assert incident_row(service, incident_id).escalation_level == 3
    [escalated] = [e for e in events_of(service, incident_id) if e.kind == "escalated"]
    assert "level 3" in (escalated.text or "")
    [record] = audit_of(service, incident_id)
    assert (record.outcome, record.detail["level"]) == ("ok", 3)
    assert "level_assumed_after" not in record.detail
    assert "PagerDuty does not say" not in thread_of(slack, message.ts)
    assert metric(service, "opsbot_pagerduty_level_unknown_total", where="call") == 0


def test_a_level_pagerduty_does_not_tell_is_assumed_out_loud(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    three_levels: PagerDutyEmulator,
) -> None:
    pagerduty = three_levels
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    # Reassigned to Dave, who is on call on no level of the policy: the level is unknown.
    pagerduty.reassign_in_app(pd_incident["id"], to_user_id="PDAVE", by_user_id="PALICE")

    url = slack.response_url()
    click(service, render.ESCALATE, str(incident_id), response_url=url)
    wait_for(lambda: levels_asked(pagerduty))
    wait_for(lambda: outbox_idle(service))
    # Nothing escalated it before: level 1, where every page starts, is assumed.
    assert levels_asked(pagerduty) == [2]
    said = wait_for(lambda: [r["text"] for r in responses_to(slack, url)])
    assert any("assuming it was at level 1" in text for text in said), said
    thread = wait_for(lambda: (t := thread_of(slack, message.ts)) and "does not say" in t and t)
    assert "escalated it to level 2, the one after level 1" in thread
    [record] = audit_of(service, incident_id)
    assert (record.outcome, record.detail["level_assumed_after"]) == ("ok", 1)
    assert metric(service, "opsbot_pagerduty_level_unknown_total", where="call") == 1


def test_an_escalation_in_pagerduty_shows_its_level_worked_out(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    three_levels: PagerDutyEmulator,
) -> None:
    pagerduty = three_levels
    service = make_service(
        settings.model_copy(update={"pagerduty_webhook_secrets": [SecretStr(SECRET)]}),
        parse_config(TEST_CONFIG),
    )
    pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", SECRET)
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == pd_incident["id"])

    pagerduty.escalate_by_itself(pd_incident["id"], level=2)
    wait_for(lambda: incident_row(service, incident_id).escalation_level == 2)
    wait_for(lambda: "level 2" in message_text(message))
    [escalated] = [e for e in events_of(service, incident_id) if e.kind == "escalated"]
    assert "to level 2" in (escalated.text or "")
