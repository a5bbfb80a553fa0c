"""A PagerDuty resolve whose incident cannot be told apart while PagerDuty's REST API is down.

After a re-page ours follows no PagerDuty incident until the new one's trigger
webhook comes; a resolve arriving first is looked up by dedup key to tell the
new incident from the old one. If that lookup fails, the resolve must come
again (5xx): answered 200 as "older", it would never be delivered again and
ours would stay open while PagerDuty's is resolved.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.incidents import render
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import T0, click, incident_row, page, pd_calls, send_alarm
from tests.incidents.test_webhook_races import (
    deliver,
    subscribe,
    webhook_service,
    webhooks_held,
)
from tests.support import LiveService, wait_for

__all__ = ["webhook_service"]  # the fixture, shared with the races


def test_a_resolve_that_cannot_be_placed_is_refused_for_now_and_applied_when_it_comes_again(
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
        wait_for(lambda: pd_calls(pagerduty, "PUT"))
        wait_for(lambda: incident_row(service, incident_id).status == "resolved")
        # Fires again in the reopen window: paged again, as a new PagerDuty incident.
        send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
        send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
        [second] = wait_for(
            lambda: [i for i in pagerduty.incidents_for(dedup_key) if i["id"] != first["id"]]
        )
        assert incident_row(service, incident_id).pagerduty_incident_id is None
        # On-call resolves the new one in PagerDuty's app; its trigger webhook is still
        # on its way, and PagerDuty's REST API is down.
        pagerduty.act_in_app(second["id"], status="resolved", user_id="PBOB")
        with pagerduty.lock:
            resolve = pagerduty.webhook_body(
                "incident.resolved",
                pagerduty.incidents[second["id"]],
                agent={"id": "PBOB", "type": "user_reference", "summary": "Bob Example"},
            )
        pagerduty.faults.fail_for(600, status=503, calls=("/incidents",), method="GET")

        with caplog.at_level("WARNING", logger="handlers.pagerduty_webhooks"):
            status, outcome = deliver(service, resolve)
        assert status == 503, outcome
        [said] = [r for r in caplog.records if "not applied for now" in r.getMessage()]
        assert said.levelname == "WARNING" and said.exc_info is None  # expected: no traceback
        assert incident_row(service, incident_id).status == "open"  # nothing recorded

        pagerduty.faults.clear()
        status, outcome = deliver(service, resolve)  # PagerDuty delivers it again
        assert status == 200 and "recorded only" not in outcome, outcome
        row = incident_row(service, incident_id)
        assert (row.status, row.pagerduty_incident_id) == ("resolved", second["id"])
