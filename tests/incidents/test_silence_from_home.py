"""The Silence… menu records where it was used: from App Home as `home`, as the buttons do."""

from __future__ import annotations

from bot.incidents import render
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.slack_home import home_block_action
from sandbox.slack_requests import FORM
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_SIGNING_SECRET
from tests.incidents.helpers import audit_of, click, incident_row, page
from tests.support import LiveService, slack_headers, wait_for


def silence_audits(service: LiveService, incident_id: int) -> list[str]:
    return [
        str(r.detail.get("via"))
        for r in audit_of(service, incident_id)
        if r.action == "incident.silence"
    ]


def test_the_silence_menu_says_whether_it_was_used_on_home_or_on_a_message(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    home = {"id": "V0HOME", "type": "home", "blocks": []}
    body = home_block_action(render.SILENCE, f"{incident_id}:30m", user_id="U0ALICE", view=home)
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": FORM}
    assert service.post("/slack/events", content=body, headers=headers).status_code == 200
    wait_for(lambda: incident_row(service, incident_id).silenced_until is not None)
    wait_for(lambda: silence_audits(service, incident_id) == ["home"])

    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:{render.UNSILENCE}",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is None)
    wait_for(lambda: silence_audits(service, incident_id) == ["home", "button"])
