"""After a re-page, a click acts on the newest PagerDuty incident with our dedup key.

PagerDuty lists incidents oldest first unless asked otherwise, and REST names the
number `incident_number`. Without webhooks (no secret set, the default), the new
incident's id is found by dedup key: the newest by `created_at`, not the first listed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from bot.config import parse_config
from bot.incidents import render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    click,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.support import LiveService, wait_for


@pytest.fixture
def repaging_service(settings: Settings, make_service: Callable[..., LiveService]) -> LiveService:
    """No webhook secret, and a reopen window in which an alarm firing again pages again."""
    alarms = {**TEST_CONFIG["alarms"], "reopen_window_s": 600}
    return make_service(settings, parse_config({**TEST_CONFIG, "alarms": alarms}))


def test_acknowledge_after_a_repage_acts_on_the_new_pagerduty_incident(
    repaging_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = repaging_service
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    dedup_key = incident_row(service, incident_id).dedup_key
    click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
    [first] = pagerduty.incidents_for(dedup_key)
    wait_for(lambda: pagerduty.incidents[first["id"]]["status"] == "resolved")
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    wait_for(lambda: outbox_idle(service))
    # Fires again in the reopen window: paged again, as a new PagerDuty incident.
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: len(pagerduty.incidents_for(dedup_key)) == 2)
    [second] = [i for i in pagerduty.incidents_for(dedup_key) if i["id"] != first["id"]]
    wait_for(lambda: outbox_idle(service))
    assert incident_row(service, incident_id).pagerduty_incident_id is None

    url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=url)
    wait_for(lambda: pagerduty.incidents[second["id"]]["status"] == "acknowledged")
    wait_for(lambda: outbox_idle(service))
    acks = [
        p
        for p in pd_calls(pagerduty, "PUT")
        if p["body"]["incident"].get("status") == "acknowledged"
    ]
    assert [p["path"] for p in acks] == [f"/incidents/{second['id']}"]
    listed = [c for c in pd_calls(pagerduty, "GET", "/incidents") if c["path"] == "/incidents"]
    assert listed and all(c["query"].get("sort_by") == ["created_at:desc"] for c in listed)
    row = incident_row(service, incident_id)
    assert (row.pagerduty_incident_id, row.acknowledged_by) == (second["id"], "<@U0BOB>")
    # The number is learned from REST's `incident_number`, with no webhook.
    assert row.pagerduty_number == second["number"] == 2
