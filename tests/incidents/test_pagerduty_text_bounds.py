"""PagerDuty's text longer than the columns opsbot keeps it in is cut, not refused.

A title typed in PagerDuty, or a priority name its account chose, can be longer
than the incident's columns. Stored uncut, PostgreSQL refuses the transaction,
the webhook is answered 5xx, and PagerDuty delivers it again for two days while
Slack never hears of the change.
"""

from __future__ import annotations

from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import incident_row, outbox_idle, page
from tests.incidents.test_webhook_other_service import BOB, post_webhook
from tests.incidents.test_webhook_races import webhooks_held
from tests.incidents.test_webhooks import webhook_service  # noqa: F401 (fixture)
from tests.support import LiveService, wait_for


def test_an_incident_opened_in_pagerduty_with_a_title_past_the_column_is_posted_cut(
    webhook_service: LiveService,  # noqa: F811
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    with webhooks_held(pagerduty):
        opened = pagerduty.open_in_app("PSERVICE", title="502s " * 300, user_id="PBOB")
    body = pagerduty.webhook_body("incident.triggered", dict(opened), agent=BOB)

    status, outcome = post_webhook(service, body)

    assert status == 200, outcome
    row = incident_row(service, 1)
    assert row.pagerduty_incident_id == opened["id"]
    assert len(row.title) == 1024 and row.title.startswith("502s 502s") and row.title.endswith("…")
    wait_for(lambda: slack.channel_messages("C0ALERTS"))
    wait_for(lambda: outbox_idle(service))


def test_a_priority_name_past_the_column_is_kept_cut(
    webhook_service: LiveService,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    name = "P1 - customer facing, all hands, call the incident commander now " * 3
    with webhooks_held(pagerduty):
        pagerduty.set_priority_in_app(ours["id"], priority=name, by_user_id="PBOB")
        body = pagerduty.webhook_body("incident.priority_updated", dict(ours), agent=BOB)

    status, outcome = post_webhook(service, body)

    assert status == 200, outcome
    row = incident_row(service, incident_id)
    assert row.priority is not None and len(row.priority) == 80
    assert row.priority.startswith("P1 - customer facing") and row.priority.endswith("…")
    wait_for(lambda: outbox_idle(service))
