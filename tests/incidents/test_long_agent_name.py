"""A PagerDuty agent's name longer than the columns it is kept in."""

from __future__ import annotations

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import events_of, incident_row, outbox_idle, page
from tests.incidents.test_webhook_other_service import post_webhook
from tests.incidents.test_webhooks import webhook_service  # noqa: F401 (fixture)
from tests.support import LiveService, wait_for


def test_a_resolve_by_an_integration_with_a_long_name_resolves_ours_with_the_name_cut(
    webhook_service: LiveService,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    # 200 characters as its owner typed them, longer than 255 once '&', '<', '>' are escaped.
    name = ("Payments <prod> & Billing <prod> & Ledger " * 5)[:200]
    agent = {"id": "PINTEG", "type": "events_api_v2_inbound_integration_reference", "summary": name}
    body = pagerduty.webhook_body("incident.resolved", {**ours, "status": "resolved"}, agent=agent)

    assert post_webhook(service, body)[0] == 200

    row = incident_row(service, incident_id)
    assert row.status == "resolved"
    assert row.resolved_by is not None and len(row.resolved_by) <= 255
    assert row.resolved_by.startswith("Payments &lt;prod&gt; &amp; Billing")
    assert row.resolved_by.endswith("…") and "&amp…" not in row.resolved_by
    actors = [e.actor or "" for e in events_of(service, incident_id)]
    assert all(len(actor) <= 255 for actor in actors)
    wait_for(lambda: outbox_idle(service))
