"""A PagerDuty incident on another service that carries our dedup key is not ours."""

from __future__ import annotations

import json
from typing import Any

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import incident_row, outbox_idle, page
from tests.incidents.test_webhooks import SECRET, webhook_service  # noqa: F401 (fixture)
from tests.support import LiveService, wait_for

BOB = {"id": "PBOB", "type": "user_reference", "summary": "Bob"}


def post_webhook(
    service: LiveService, body: dict[str, Any], *, secret: str = SECRET
) -> tuple[int, str]:
    """A signed delivery of one event, as PagerDuty sends it; its status and message."""
    raw = json.dumps(body).encode()
    answer = service.post(
        "/pagerduty/webhooks",
        content=raw,
        headers={
            "X-PagerDuty-Signature": PagerDutyEmulator.sign(raw, secret),
            "content-type": "application/json",
        },
    )
    return answer.status_code, answer.json()["message"]


def test_an_incident_of_another_service_with_our_dedup_key_neither_binds_nor_resolves_ours(
    webhook_service: LiveService,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    assert incident_row(service, incident_id).pagerduty_service_id == ours["service"]["id"]
    other = {
        **ours,
        "id": "PFOREIGN1",
        "number": 9999,
        "service": {"id": "PSVCOTHER", "type": "service_reference", "summary": "other team"},
        "status": "triggered",
    }

    triggered = post_webhook(
        service, pagerduty.webhook_body("incident.triggered", other, agent=BOB)
    )
    resolved = post_webhook(
        service,
        pagerduty.webhook_body("incident.resolved", {**other, "status": "resolved"}, agent=BOB),
    )

    assert triggered[0] == resolved[0] == 200
    row = incident_row(service, incident_id)
    assert (row.status, row.pagerduty_incident_id) == ("open", ours["id"])
    assert pagerduty.incidents[ours["id"]]["status"] == "triggered"
    wait_for(lambda: outbox_idle(service))
