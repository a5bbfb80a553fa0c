"""`/incident`, sent as signed slash commands through Bolt, against the emulators."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_REST, Delivery
from bot.slack_dates import slack_date
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import PD_ROUTING_KEY
from tests.incidents.helpers import (
    ack_text,
    audit_of,
    command,
    events_of,
    incident_row,
    message_text,
    only_incident,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.support import LiveService, metric, wait_for


def test_list_shows_open_incidents_newest_first(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    first, _ = page(service, sns_signer, slack, pagerduty, "prod-api-5xx")
    send_alarm(service, sns_signer, "staging-queue-depth", "ALARM")
    second = wait_for(lambda: only_incident(service, "staging-queue-depth")).id
    url = slack.response_url()
    answer = command(service, "/incident", "list", response_url=url)
    assert ack_text(answer) == ""
    [reply] = wait_for(lambda: responses_to(slack, url))
    text = str(reply["blocks"])
    assert f"#{second}*" in text and f"#{first}*" in text
    assert text.index(f"#{second}*") < text.index(f"#{first}*")
    assert "*not acknowledged*" in text


def test_ack_command_acts_as_the_user_and_answers_them(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    answer = command(service, "/incident", f"ack #{incident_id}", user_id="U0BOB", response_url=url)
    assert ack_text(answer) == f"Acknowledging #{incident_id}…"
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert (put["from"], put["body"]["incident"]["status"]) == ("bob@example.com", "acknowledged")
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert reply["text"] == f"Acknowledged #{incident_id} in PagerDuty."
    wait_for(lambda: "acknowledged by <@U0BOB>" in message_text(message))
    assert audit_of(service, incident_id)[-1].detail["via"] == "command"


def test_resolve_command_sends_the_note_as_the_resolution(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    command(service, "/incident", f"resolve {incident_id} rolled back to v41", response_url=url)
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["body"]["incident"] == {
        "type": "incident_reference",
        "status": "resolved",
        "resolution": "rolled back to v41",
    }
    wait_for(lambda: "resolved by <@U0ALICE>" in message_text(message))
    resolved = [e for e in events_of(service, incident_id) if e.kind == "resolved"]
    assert resolved[0].text == "from Slack: rolled back to v41"


def test_declare_pages_through_the_route_and_posts_its_own_message(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    url = slack.response_url()
    answer = command(
        service,
        "/incident",
        "declare Checkout can't take payments --severity warning --route prod",
        response_url=url,
        channel_id="D0ALICE",  # from a DM, where the bot answers through response_url only
    )
    assert ack_text(answer) == "Declaring the incident…"
    [event] = wait_for(lambda: pagerduty.events)
    assert event["routing_key"] == PD_ROUTING_KEY and event["event_action"] == "trigger"
    assert event["payload"]["summary"] == "Checkout can't take payments"
    assert event["payload"]["severity"] == "warning"
    assert event["payload"]["custom_details"]["declared_by"] == "<@U0ALICE>"
    [message] = wait_for(lambda: slack.channel_messages("C0PRODALERTS"))
    assert "Checkout can't take payments" in message.text
    assert "Declared from Slack by <@U0ALICE>" in str(message.blocks)
    for action in (render.ACKNOWLEDGE, render.RESOLVE, render.ESCALATE):
        assert action in str(message.blocks)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "Declared incident #1 in <#C0PRODALERTS>" in reply["text"]
    assert [(r.action, r.outcome) for r in audit_of(service, 1)] == [("incident.declare", "ok")]
    assert pagerduty.incidents_for(incident_row(service, 1).dedup_key)


def test_declare_with_bad_input_answers_with_the_usage_line(
    service: LiveService, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    url = slack.response_url()
    bad = command(service, "/incident", "declare DB down --severity sev1", response_url=url)
    assert "`sev1` is not a severity" in ack_text(bad)
    assert "Usage: `/incident declare &lt;summary&gt;" in ack_text(bad)
    empty = command(service, "/incident", "declare --route prod", response_url=url)
    assert "`declare` needs a summary" in ack_text(empty)
    command(service, "/incident", "declare DB down --route nowhere", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert "No route `nowhere` can page. Routes that can: `prod`." in reply["text"]
    assert pagerduty.events == []


def test_note_goes_to_the_timeline_the_thread_and_pagerduty(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    command(service, "/incident", f"note {incident_id} restarted the api pods", response_url=url)
    [post] = wait_for(lambda: pd_calls(pagerduty, "POST"))
    assert post["from"] == "alice@example.com"
    assert post["body"] == {"note": {"content": "restarted the api pods"}}
    [reply] = wait_for(lambda: slack.thread("C0PRODALERTS", message.ts))
    assert reply.text == ":memo: Note from <@U0ALICE>: restarted the api pods"
    wait_for(lambda: outbox_idle(service))
    notes = [e for e in events_of(service, incident_id) if e.kind == "note"]
    assert len(notes) == 1 and notes[0].data["pagerduty_note_id"].startswith("N")
    assert audit_of(service, incident_id)[-1].action == "incident.note"


def test_a_note_whose_answer_was_lost_is_found_not_posted_again(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    # PagerDuty keeps the note but answers after opsbot stopped waiting (2 s here).
    pagerduty.faults.hang_next(1, seconds=2.05, calls=("/incidents/",), method="POST")
    url = slack.response_url()
    command(service, "/incident", f"note {incident_id} restarted the api pods", response_url=url)

    def noted() -> bool:
        notes = [e for e in events_of(service, incident_id) if e.kind == "note"]
        return bool(notes) and bool(notes[0].data.get("pagerduty_note_id"))

    wait_for(noted, timeout_s=20)
    wait_for(lambda: outbox_idle(service))
    with pagerduty.lock:
        contents = [n["content"] for notes in pagerduty.notes.values() for n in notes]
    assert contents == ["restarted the api pods"]
    assert len(pd_calls(pagerduty, "POST")) == 1  # the second attempt looked, and found it
    assert [e.kind for e in events_of(service, incident_id)].count("note") == 1
    replies = [m.text for m in slack.thread("C0PRODALERTS", message.ts)]
    assert replies == [":memo: Note from <@U0ALICE>: restarted the api pods"]
    assert metric(service, "opsbot_pagerduty_found_done_total", action="note") == 1


def test_a_note_pagerduty_surely_did_not_take_is_retried_without_waiting_for_a_late_one(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    # A 503 did nothing: the next attempt comes after the usual backoff, not after
    # the lease a note that may have landed waits out.
    pagerduty.faults.fail_for(60, status=503, calls=("/incidents/",), method="POST")
    command(
        service, "/incident", f"note {incident_id} rolled back", response_url=slack.response_url()
    )

    def retried() -> list[Delivery]:
        with service.runtime.sessions() as db:
            rows = db.scalars(sa.select(Delivery).where(Delivery.kind == PAGERDUTY_REST)).all()
        return [r for r in rows if r.attempts >= 1 and "503" in (r.last_error or "")]

    [delivery] = wait_for(retried, timeout_s=10)
    lease_s = service.runtime.config.delivery.lease_s
    assert delivery.not_before - delivery.updated_at < timedelta(seconds=lease_s)
    pagerduty.faults.clear()
    wait_for(lambda: [e.kind for e in events_of(service, incident_id)].count("note") == 1)
    wait_for(lambda: outbox_idle(service))
    with pagerduty.lock:
        assert [n["content"] for ns in pagerduty.notes.values() for n in ns] == ["rolled back"]
    assert metric(service, "opsbot_pagerduty_found_done_total", action="note") == 0


def test_timeline_reads_in_slack_and_exports_markdown(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    command(service, "/incident", f"ack {incident_id}", response_url=slack.response_url())
    wait_for(lambda: "acknowledged by" in message_text(message))

    url = slack.response_url()
    command(service, "/incident", f"timeline {incident_id}", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    shown = str(reply["blocks"])
    assert "alarm OK → ALARM" in shown and "acknowledged by <@U0ALICE>: from Slack" in shown

    md_url = slack.response_url()
    command(service, "/incident", f"timeline {incident_id} markdown", response_url=md_url)
    [markdown] = wait_for(lambda: responses_to(slack, md_url))
    text = markdown["text"]
    assert text.startswith("```\n## Incident #") and "| Time (UTC) | Event |" in text
    assert "acknowledged by @alice: from Slack" in text and "<@" not in text
    # Slack shows every time as a Slack date (each reader's zone); Markdown keeps ISO UTC.
    incident, events = incident_row(service, incident_id), events_of(service, incident_id)
    assert events and incident.acknowledged_at is not None
    assert slack_date(incident.opened_at) in message_text(message)
    assert slack_date(incident.acknowledged_at) in message_text(message)
    for event in events:
        assert slack_date(event.at, seconds=True) in shown
        assert f"| {event.at:%Y-%m-%d %H:%M:%S} UTC | " in text
    assert f"- Opened: {incident.opened_at:%Y-%m-%d %H:%M:%S} UTC\n" in text
    assert "<!date" not in text


def test_ack_of_an_incident_that_was_never_paged_acts_in_slack_only(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    send_alarm(service, sns_signer, "staging-queue-depth", "ALARM")
    incident_id = wait_for(lambda: only_incident(service, "staging-queue-depth")).id
    url = slack.response_url()
    command(service, "/incident", f"ack {incident_id}", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert reply["text"].startswith(f"Acknowledged #{incident_id}")
    assert pagerduty.rest_calls == []
    assert incident_row(service, incident_id).acknowledged_by == "<@U0ALICE>"
    with service.runtime.sessions() as db:
        [record] = db.scalars(sa.select(AuditRecord)).all()
        assert record.detail["pagerduty"] is False


def test_help_unknown_and_malformed_commands(service: LiveService, slack: SlackEmulator) -> None:
    url = slack.response_url()
    assert "`/incident declare &lt;summary&gt;" in ack_text(
        command(service, "/incident", "help", response_url=url)
    )
    unknown = ack_text(command(service, "/incident", "frobnicate 3", response_url=url))
    assert unknown.startswith("Unknown subcommand `frobnicate`.") and "/incident list" in unknown
    missing = ack_text(command(service, "/incident", "ack", response_url=url))
    assert "`ack` needs an incident number" in missing
    assert "Usage: `/incident ack &lt;id&gt;`" in missing
    note = ack_text(command(service, "/incident", "note 4", response_url=url))
    assert "`note` needs the text of the note" in note

    command(service, "/incident", "ack 999", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    assert reply["text"].startswith("There is no incident `999`.")
    assert "Usage: `/incident ack &lt;id&gt;`" in reply["text"]
