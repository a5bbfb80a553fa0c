"""`/incident` text has a length: a resolution note is held to a note's limit.

Too long is refused with the usage and the limit, before any work: the incident
stays open, PagerDuty hears nothing, nothing is audited or put on the timeline.
What an acknowledgement shows back of the typed words is clipped.
"""

from __future__ import annotations

from handlers.incidents import NOTE_MAX
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    ack_text,
    audit_of,
    command,
    events_of,
    incident_row,
    page,
    pd_calls,
    responses_to,
)
from tests.support import LiveService, wait_for


def test_a_resolution_note_past_a_notes_limit_is_refused_and_changes_nothing(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    events = [e.id for e in events_of(service, incident_id)]
    audit = [a.id for a in audit_of(service, incident_id)]
    url = slack.response_url()
    note = "n" * (NOTE_MAX + 1)
    acked = ack_text(
        command(service, "/incident", f"resolve {incident_id} {note}", response_url=url)
    )
    assert acked.startswith(f"The resolution note is too long ({NOTE_MAX:,} characters at most).")
    assert "Usage: `/incident resolve &lt;id&gt; [note]`" in acked
    assert "n" * 100 not in acked

    # Once a later command's work has run, work queued before it has started (first
    # in, first out), and its PagerDuty call been made.
    later = slack.response_url()
    command(service, "/incident", f"timeline {incident_id}", response_url=later)
    wait_for(lambda: responses_to(slack, later))
    assert responses_to(slack, url) == []
    assert pd_calls(pagerduty, "PUT") == []
    assert incident_row(service, incident_id).resolved_at is None
    assert [e.id for e in events_of(service, incident_id)] == events
    assert [a.id for a in audit_of(service, incident_id)] == audit


def test_a_resolution_note_at_the_limit_is_sent(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    note = "n" * NOTE_MAX
    command(
        service, "/incident", f"resolve {incident_id} {note}", response_url=slack.response_url()
    )
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["body"]["incident"]["resolution"] == note


def test_the_acknowledgement_clips_the_words_it_shows_back(
    service: LiveService, slack: SlackEmulator
) -> None:
    for text in (f"resolve {'A' * 5000}", f"timeline 1 {'x' * 5000}", f"{'x' * 5000} 1"):
        acked = ack_text(command(service, "/incident", text, response_url=slack.response_url()))
        assert "x" * 100 not in acked and "A" * 100 not in acked, acked[:200]
        assert "…" in acked
