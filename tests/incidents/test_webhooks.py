"""PagerDuty webhooks v3 back into Slack: signed deliveries from the emulator to a live service."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config import Config, parse_config
from bot.incidents import render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    click,
    events_of,
    incident_row,
    message_text,
    outbox_idle,
    page,
    responses_to,
)
from tests.support import LiveService, metric, wait_for

SECRET = "whsec-current"
OLD_SECRET = "whsec-previous"


@pytest.fixture
def webhook_service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
) -> LiveService:
    config = parse_config({**TEST_CONFIG, "oncall": {"pagerduty_channel": "C0ALERTS"}})
    secrets = [SecretStr(OLD_SECRET), SecretStr(SECRET)]
    service = make_service(
        settings.model_copy(update={"pagerduty_webhook_secrets": secrets}), config
    )
    pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", SECRET)
    return service


def deliveries(pagerduty: PagerDutyEmulator, event_type: str) -> list[dict[str, Any]]:
    with pagerduty.lock:
        return [
            d
            for d in pagerduty.webhook_deliveries
            if d["body"]["event"]["event_type"] == event_type
        ]


def replay(service: LiveService, delivery: dict[str, Any], **headers: str) -> tuple[int, str]:
    answer = service.post(
        "/pagerduty/webhooks", content=delivery["raw"], headers={**delivery["headers"], **headers}
    )
    return answer.status_code, answer.json()["message"]


def test_acknowledged_in_the_pagerduty_app_updates_slack_and_a_replay_changes_nothing(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == pd_incident["id"])
    wait_for(lambda: f"#{pd_incident['number']}" in message_text(message))

    pagerduty.act_in_app(pd_incident["id"], status="acknowledged", user_id="PBOB")
    [delivery] = wait_for(lambda: deliveries(pagerduty, "incident.acknowledged"))
    assert delivery["status"] == 200
    wait_for(lambda: "acknowledged by <@U0BOB>" in message_text(message))
    wait_for(lambda: outbox_idle(service))
    assert render.ACKNOWLEDGE not in str(message.blocks)
    updates, events = message.updates, len(events_of(service, incident_id))

    assert replay(service, delivery) == (200, "duplicate")
    # The same event in another delivery (a new X-Webhook-Id) is the same change.
    assert replay(service, delivery, **{"X-Webhook-Id": "another-delivery"}) == (200, "duplicate")
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="duplicate") == 2
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="applied") >= 1
    wait_for(lambda: outbox_idle(service))
    assert message.updates == updates
    assert len(events_of(service, incident_id)) == events


def test_bad_signature_gets_401_and_changes_nothing(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    body = json.dumps(
        pagerduty.webhook_body(
            "incident.resolved",
            {**pd_incident, "status": "resolved"},
            agent={"id": "PBOB", "type": "user_reference", "summary": "Bob"},
        )
    ).encode()
    forged = PagerDutyEmulator.sign(body, "not-the-secret")
    for signature in (forged, "", "v0=abc", forged + ",v1=00"):
        answer = service.post(
            "/pagerduty/webhooks",
            content=body,
            headers={"X-PagerDuty-Signature": signature, "X-Webhook-Id": "w-forged"},
        )
        assert answer.status_code == 401
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="refused") == 4
    wait_for(lambda: outbox_idle(service))
    assert incident_row(service, incident_id).status == "open"
    assert "resolved" not in message_text(message)

    # Signed with the retiring secret next to the new one (a rotation): accepted.
    rotated = (
        PagerDutyEmulator.sign(body, "whsec-unknown")
        + ","
        + PagerDutyEmulator.sign(body, OLD_SECRET)
    )
    answer = service.post(
        "/pagerduty/webhooks",
        content=body,
        headers={"X-PagerDuty-Signature": rotated, "X-Webhook-Id": "w-rotated"},
    )
    assert answer.status_code == 200
    wait_for(lambda: "resolved by <@U0BOB>" in message_text(message))


def test_events_of_one_incident_update_message_and_timeline(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    pd_id = pd_incident["id"]
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == pd_id)

    pagerduty.act_in_app(pd_id, status="acknowledged", user_id="PALICE")
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    pagerduty.unacknowledge_in_app(pd_id)
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is None)
    pagerduty.reassign_in_app(pd_id, to_user_id="PBOB", by_user_id="PALICE")
    wait_for(lambda: "assigned to <@U0BOB>" in message_text(message))
    pagerduty.set_priority_in_app(pd_id, priority="P1", by_user_id="PALICE")
    wait_for(lambda: "P1" in message_text(message))
    pagerduty.add_note_in_app(pd_id, content="DB failover in progress", user_id="PBOB")
    wait_for(
        lambda: any(
            "DB failover in progress" in m.text for m in slack.thread("C0PRODALERTS", message.ts)
        )
    )
    pagerduty.act_in_app(pd_id, status="resolved", user_id="PBOB")
    wait_for(lambda: "resolved by <@U0BOB>" in message_text(message))
    wait_for(lambda: outbox_idle(service))
    kinds = [e.kind for e in events_of(service, incident_id)]
    assert kinds == [
        "alarm_state",
        "paged",
        "acknowledged",
        "unacknowledged",
        "reassigned",
        "priority",
        "note",
        "resolved",
    ]
    resolved = events_of(service, incident_id)[-1]
    assert (resolved.actor, resolved.text) == ("<@U0BOB>", "in PagerDuty")


def test_our_own_action_and_its_webhook_make_one_change(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: deliveries(pagerduty, "incident.acknowledged"))
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    click(service, render.ESCALATE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: deliveries(pagerduty, "incident.escalated"))
    wait_for(lambda: "level 2" in message_text(message))
    wait_for(lambda: outbox_idle(service))
    kinds = [e.kind for e in events_of(service, incident_id)]
    assert kinds.count("acknowledged") == 1
    assert kinds.count("escalated") == 1
    assert kinds[-1] == "escalated"


def test_incident_opened_in_pagerduty_by_someone_else_is_posted_with_buttons(
    webhook_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service = webhook_service
    pd_incident = pagerduty.open_in_app("PSERVICE", title="Customers report 502s", user_id="PBOB")
    [message] = wait_for(lambda: slack.channel_messages("C0ALERTS"))
    text = message_text(message)
    assert "Customers report 502s" in text and "opened" in text and "by <@U0BOB>" in text
    assert render.ACKNOWLEDGE in text and render.ESCALATE in text
    assert render.SILENCE not in text  # nothing to silence: no alarm behind it

    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, "1", response_url=url)
    wait_for(lambda: pagerduty.incidents[pd_incident["id"]]["status"] == "acknowledged")
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))
    assert responses_to(slack, url) == []


def test_late_event_is_recorded_but_not_applied(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id)
    pagerduty.act_in_app(pd_incident["id"], status="resolved", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    # An acknowledgement from before the resolve, delivered after it.
    late = pagerduty.webhook_body(
        "incident.acknowledged",
        {**pd_incident, "status": "acknowledged"},
        agent={"id": "PALICE", "type": "user_reference", "summary": "Alice Example"},
    )
    late["event"]["occurred_at"] = "2020-01-01T00:00:00Z"
    body = json.dumps(late).encode()
    answer = service.post(
        "/pagerduty/webhooks",
        content=body,
        headers={"X-PagerDuty-Signature": PagerDutyEmulator.sign(body, SECRET)},
    )
    assert answer.status_code == 200 and "recorded only" in answer.json()["message"]
    row = incident_row(service, incident_id)
    assert row.status == "resolved" and row.acknowledged_by is None


def test_ping_and_malformed_bodies(webhook_service: LiveService) -> None:
    ping = json.dumps({"event": {"id": "E1", "event_type": "pagey.ping", "data": {}}}).encode()
    answer = webhook_service.post(
        "/pagerduty/webhooks",
        content=ping,
        headers={"X-PagerDuty-Signature": PagerDutyEmulator.sign(ping, SECRET)},
    )
    assert (answer.status_code, answer.json()["message"]) == (200, "pong")
    assert metric(webhook_service, "opsbot_pagerduty_webhooks_total", outcome="ignored") == 1
    junk = b"not json"
    answer = webhook_service.post(
        "/pagerduty/webhooks",
        content=junk,
        headers={"X-PagerDuty-Signature": PagerDutyEmulator.sign(junk, SECRET)},
    )
    assert answer.status_code == 400
    assert metric(webhook_service, "opsbot_pagerduty_webhooks_total", outcome="malformed") == 1


def test_no_secrets_configured_refuses_everything(service: LiveService, config: Config) -> None:
    body = json.dumps({"event": {"id": "E1", "event_type": "pagey.ping", "data": {}}}).encode()
    answer = service.post(
        "/pagerduty/webhooks",
        content=body,
        headers={"X-PagerDuty-Signature": PagerDutyEmulator.sign(body, "")},
    )
    assert answer.status_code == 401
