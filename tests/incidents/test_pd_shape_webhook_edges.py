"""Webhook events older than PagerDuty retries for, and the ids a failure's log names.

Webhooks v3 sign the body only, with no timestamp: once its receipt is pruned, a
captured delivery would be applied again. PagerDuty retries for 48 h, so an event
older than 72 h is recorded, counted and logged, never applied or posted.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.incidents import render
from bot.incidents.models import Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    T0,
    click,
    events_of,
    incident_row,
    page,
    pd_calls,
    send_alarm,
)
from tests.incidents.test_webhook_races import deliver, subscribe, webhook_service, webhooks_held
from tests.support import LiveService, metric, wait_for

__all__ = ["webhook_service"]  # the fixture


def aged(body: dict[str, Any], days: int) -> dict[str, Any]:
    body["event"]["occurred_at"] = (datetime.now(UTC) - timedelta(days=days)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    return body


def test_a_ten_day_old_trigger_of_an_incident_not_ours_is_not_posted(
    webhook_service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service = webhook_service  # posts incidents opened in PagerDuty in C0ALERTS
    with webhooks_held(pagerduty):
        opened = pagerduty.open_in_app("PSERVICE", title="disk full", user_id="PBOB")
        with pagerduty.lock:
            trigger = pagerduty.webhook_body(
                "incident.triggered",
                opened,
                agent={"id": "PBOB", "type": "user_reference", "summary": "Bob Example"},
            )
    status, outcome = deliver(service, aged(trigger, days=10))
    assert (status, outcome) == (200, "ignored: incident.triggered is older than 72 h")
    assert metric(service, "opsbot_pagerduty_webhooks_too_old_total") == 1
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="ignored") == 1
    with service.runtime.sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0
    assert slack.channel_messages("C0ALERTS") == []
    assert deliver(service, trigger) == (200, "duplicate")  # its receipt is kept
    # Not even PagerDuty is asked about it.
    assert pd_calls(pagerduty, "GET", "/incidents") == []


def test_an_old_event_of_our_incident_is_kept_in_the_timeline_only(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    with pagerduty.lock:
        ack = pagerduty.webhook_body(
            "incident.acknowledged",
            {**pd_incident, "status": "acknowledged"},
            agent={"id": "PBOB", "type": "user_reference", "summary": "Bob Example"},
        )
    status, outcome = deliver(service, aged(ack, days=4))
    assert status == 200 and outcome.endswith("recorded only"), outcome
    assert incident_row(service, incident_id).acknowledged_at is None
    assert any("older than 72 h" in (e.text or "") for e in events_of(service, incident_id))


def test_a_webhook_that_cannot_be_placed_is_logged_with_its_incidents(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = webhook_service
    subscribe(service, pagerduty)
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [first] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == first["id"])
    dedup_key = incident_row(service, incident_id).dedup_key
    with webhooks_held(pagerduty):
        click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
        wait_for(lambda: incident_row(service, incident_id).status == "resolved")
        send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
        send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
        [second] = wait_for(
            lambda: [i for i in pagerduty.incidents_for(dedup_key) if i["id"] != first["id"]]
        )
        pagerduty.act_in_app(second["id"], status="resolved", user_id="PBOB")
        with pagerduty.lock:
            resolve = pagerduty.webhook_body(
                "incident.resolved",
                pagerduty.incidents[second["id"]],
                agent={"id": "PBOB", "type": "user_reference", "summary": "Bob Example"},
            )
        pagerduty.faults.fail_for(600, status=503, calls=("/incidents",), method="GET")
        with caplog.at_level("WARNING", logger="handlers.pagerduty_webhooks"):
            status, _outcome = deliver(service, resolve)
    assert status == 503
    [said] = [r for r in caplog.records if "not applied for now" in r.getMessage()]
    assert said.__dict__["pagerduty_event"] == resolve["event"]["id"]
    assert said.__dict__["pagerduty_incident"] == second["id"]
    assert said.__dict__["incident"] == incident_id
    assert said.__dict__["webhook_id"] == "w-" + resolve["event"]["id"]
    assert second["id"] in said.getMessage()
