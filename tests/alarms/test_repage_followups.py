"""What was asked for a page that on-call resolved in PagerDuty's app, once the alarm
fires again and is paged anew (or held): the first page's escalation, reminder and
Slack buttons do not act on a page that is not theirs.

- An escalation waiting out a PagerDuty outage is for the page it was asked on: after
  the re-page it is withdrawn, not made on the new PagerDuty incident moments after
  it opened.
- A re-page a hold keeps back pages nobody: the first page's reminder and escalation
  end (PagerDuty's resolve ends them), and the hold's end starts them over.
- Acknowledge or Resolve on such a held re-page change the incident in opsbot only:
  PagerDuty has no open incident for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_REST, Delivery
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_alarm_after_a_hold import actions, start
from tests.alarms.test_late_and_flapping import NAME, clock, due, outcomes
from tests.alarms.test_page_resolved_in_pagerduty import paged_then_ok, resolved_in_the_app
from tests.incidents.helpers import (
    audit_of,
    click,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.incidents.test_silence_and_escalation import thread_of
from tests.maintenance.conftest import silence
from tests.support import LiveService, wait_for

__all__ = ["clock", "start"]  # fixtures

WITHDRAWN = "Not escalated after all: paged anew meanwhile."


def rest_calls(service: LiveService) -> list[Delivery]:
    with service.runtime.sessions() as db:
        query = sa.select(Delivery).where(Delivery.kind == PAGERDUTY_REST).order_by(Delivery.id)
        return list(db.scalars(query))


def paged_anew_through_an_outage(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
    incident_id: int,
) -> tuple[str, str]:
    """With an escalation of the first page waiting out a REST outage, the alarm goes OK,
    on-call resolves that page in PagerDuty's app, and the alarm fires again inside the
    reopen window: paged anew. PagerDuty then answers again. The first PagerDuty
    incident's id, and the new one's."""
    wait_for(lambda: any(d.attempts >= 1 and d.status == "pending" for d in rest_calls(service)))
    [first] = pagerduty.incidents_for(incident_row(service, incident_id).dedup_key)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    pagerduty.act_in_app(first["id"], status="resolved", user_id="PALICE")
    wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "resolved")
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now() + timedelta(milliseconds=500))
    dedup_key = incident_row(service, incident_id).dedup_key
    wait_for(lambda: len(pagerduty.incidents_for(dedup_key)) == 2)
    new = pagerduty.incidents_for(dedup_key)[1]
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == new["id"])
    pagerduty.faults.clear()
    clock.advance(seconds=2)
    wait_for(lambda: all(d.status != "pending" for d in rest_calls(service)))
    return str(first["id"]), str(new["id"])


def test_opsbots_escalation_of_the_first_page_is_withdrawn_once_the_alarm_is_paged_anew(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()  # reminds after 5 min, escalates after 15
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id is not None)
    # 10:15: not acknowledged, opsbot escalates; PagerDuty's REST API answers 503.
    clock.advance(minutes=15)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents/",), method="GET")
    assert "incident:1:escalate" in due(service, clock)
    first, new = paged_anew_through_an_outage(service, clock, sns_signer, pagerduty, incident_id)

    [call] = rest_calls(service)
    assert (call.status, call.last_error) == ("cancelled", "withdrawn: paged anew meanwhile")
    assert call.payload["pagerduty_incident"] == first
    assert pd_calls(pagerduty, "PUT") == []  # neither page escalated
    assert pagerduty.incidents[new]["status"] == "triggered"
    assert pagerduty.incidents[new].get("escalation_level") in (None, 1)
    wait_for(lambda: WITHDRAWN in thread_of(slack, message.ts))
    [withdrawn] = [a for a in audit_of(service, incident_id) if a.outcome == "cancelled"]
    assert (withdrawn.actor, withdrawn.detail["reason"]) == ("opsbot", "paged anew")
    # The new page's own escalation stands: due 15 min after it.
    escalate_at = incident_row(service, incident_id).escalate_at
    assert escalate_at is not None and escalate_at > clock.now() + timedelta(minutes=14)


def test_a_persons_escalation_of_the_first_page_is_withdrawn_once_the_alarm_is_paged_anew(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(reminders=False)
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id is not None)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents/",), method="GET")
    url = slack.response_url()
    click(service, render.ESCALATE, str(incident_id), response_url=url)
    first, new = paged_anew_through_an_outage(service, clock, sns_signer, pagerduty, incident_id)

    [call] = rest_calls(service)
    assert (call.status, call.last_error) == ("cancelled", "withdrawn: paged anew meanwhile")
    assert call.payload["pagerduty_incident"] == first
    assert pd_calls(pagerduty, "PUT") == []
    assert pagerduty.incidents[new].get("escalation_level") in (None, 1)
    wait_for(lambda: WITHDRAWN in thread_of(slack, message.ts))
    wait_for(
        lambda: any(
            f"Not escalated: #{incident_id} was paged anew meanwhile" in r.get("text", "")
            for r in responses_to(slack, url)
        )
    )
    [withdrawn] = [a for a in audit_of(service, incident_id) if a.outcome == "cancelled"]
    assert (withdrawn.actor, withdrawn.detail["via"]) == ("U0ALICE", "button")


def test_an_escalation_waiting_through_a_flap_whose_page_stands_still_escalates_it(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """The flap withdraws opsbot's pending resolve, and the page stands: the escalation
    is still that page's, though the incident reopened meanwhile."""
    service = start()
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id is not None)
    clock.advance(minutes=15)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents/",), method="GET")
    assert "incident:1:escalate" in due(service, clock)
    wait_for(lambda: any(d.attempts >= 1 and d.status == "pending" for d in rest_calls(service)))
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now() + timedelta(milliseconds=500))
    wait_for(lambda: incident_row(service, incident_id).status == "open")
    assert outcomes(service)[-1].endswith(", pending resolve withdrawn")
    pagerduty.faults.clear()
    clock.advance(seconds=2)
    wait_for(lambda: all(d.status != "pending" for d in rest_calls(service)))

    [call] = rest_calls(service)
    assert call.status == "sent"
    [only] = pagerduty.incidents.values()
    [put] = pd_calls(pagerduty, "PUT")
    assert put["path"] == f"/incidents/{only['id']}"
    assert put["body"]["incident"]["escalation_level"] == 2


def test_an_escalation_does_not_step_aside_for_an_acknowledge_asked_before_the_flap(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """Alice's acknowledge queued behind opsbot's escalation was of the episode the flap
    ended: it is cancelled as obsolete, so the escalation does not wait for it."""
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id is not None)
    clock.advance(minutes=15)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents/",))
    assert "incident:1:escalate" in due(service, clock)
    wait_for(lambda: any(d.attempts >= 1 and d.status == "pending" for d in rest_calls(service)))
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: len(rest_calls(service)) == 2)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now() + timedelta(milliseconds=500))
    wait_for(lambda: incident_row(service, incident_id).status == "open")
    pagerduty.faults.clear()
    clock.advance(seconds=2)
    wait_for(lambda: all(d.status != "pending" for d in rest_calls(service)))

    escalation, acknowledge = rest_calls(service)
    assert escalation.status == "sent"
    assert acknowledge.status == "cancelled"
    assert (acknowledge.last_error or "").startswith("obsolete")
    assert [p["body"]["incident"] for p in pd_calls(pagerduty, "PUT")] == [
        {"type": "incident_reference", "escalation_level": 2}
    ]
    assert "Escalation held back" not in thread_of(slack, message.ts)


def held_repage(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    incident_id: int,
) -> None:
    """A maintenance window from 10:02; the alarm fires again at 10:03, inside the
    reopen window, its page resolved in PagerDuty: held, paged by nobody."""
    _, reply = silence(service, slack, "silence prod-api-* for 1h reason api deploy")
    assert reply is not None and "Maintenance window #1" in reply, reply
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now())
    assert outcomes(service)[-1] == (
        f"incident {incident_id} reopened: ALARM, silenced: not paged again"
    )
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger"]


def test_a_held_repage_keeps_neither_the_first_pages_reminder_nor_its_escalation(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()  # reminds after 5 min, escalates after 15
    incident_id, _ = paged_then_ok(service, clock, sns_signer, slack, pagerduty)
    resolved_in_the_app(service, pagerduty, incident_id)
    row = incident_row(service, incident_id)
    # PagerDuty's resolve ends them, though the OK had resolved the incident already.
    assert (row.remind_at, row.escalate_at) == (None, None)
    held_repage(service, clock, sns_signer, slack, pagerduty, incident_id)

    row = incident_row(service, incident_id)
    assert (row.status, row.remind_at, row.escalate_at) == ("open", None, None)
    message = slack.channel_messages("C0PRODALERTS")[0]
    clock.advance(minutes=2)  # 10:05
    assert due(service, clock) == []
    clock.advance(minutes=10)  # 10:15
    assert due(service, clock) == []
    wait_for(lambda: outbox_idle(service))
    time.sleep(0.5)
    thread = thread_of(slack, message.ts)
    assert "Still not acknowledged" not in thread
    assert "escalat" not in thread.lower()
    assert rest_calls(service) == []


def test_a_held_repage_ends_the_first_pages_reminder_when_pagerdutys_resolve_came_late(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """PagerDuty's `resolved` webhook was lost: opsbot learns that its page is resolved
    from the next webhook about it (a priority set), which resolves nothing here."""
    service = start()
    incident_id, first = paged_then_ok(service, clock, sns_signer, slack, pagerduty)
    subscriptions, pagerduty.webhooks = pagerduty.webhooks, []
    pagerduty.act_in_app(first, status="resolved", user_id="PALICE")
    pagerduty.webhooks = subscriptions
    pagerduty.set_priority_in_app(first, priority="P2", by_user_id="PALICE")
    wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "resolved")
    assert incident_row(service, incident_id).remind_at is not None
    held_repage(service, clock, sns_signer, slack, pagerduty, incident_id)

    row = incident_row(service, incident_id)
    assert (row.remind_at, row.escalate_at) == (None, None)
    clock.advance(minutes=2)  # 10:05
    assert due(service, clock) == []


def test_a_held_repage_is_acknowledged_and_resolved_in_opsbot_only(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(reminders=False)
    incident_id, _ = paged_then_ok(service, clock, sns_signer, slack, pagerduty)
    resolved_in_the_app(service, pagerduty, incident_id)
    held_repage(service, clock, sns_signer, slack, pagerduty, incident_id)
    message = slack.channel_messages("C0PRODALERTS")[0]

    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by == "<@U0ALICE>")
    click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).resolved_by == "<@U0ALICE>")
    wait_for(lambda: outbox_idle(service))

    assert rest_calls(service) == []  # PagerDuty was not asked
    assert pd_calls(pagerduty, "PUT") == []
    assert "Already Resolved" not in thread_of(slack, message.ts)
    outcomes_ = [(a.action, a.outcome) for a in audit_of(service, incident_id)]
    assert ("incident.acknowledge", "ok") in outcomes_
    assert ("incident.resolve", "ok") in outcomes_
