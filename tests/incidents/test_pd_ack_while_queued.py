"""A person's acknowledge or resolve while the incident's page still waits in the outbox.

The trigger may wait long (a 429 pause on its routing key, an Events API outage):
the call waits for it without using up its attempts, then acts on PagerDuty's
incident. A resolve asked before the trigger was ever tried withdraws it instead:
nobody is paged for an incident already resolved.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents import render
from bot.incidents.models import Incident
from bot.outbox.models import PAGERDUTY_EVENT, PAGERDUTY_REST, Delivery
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import (  # noqa: F401 (fixtures)
    NAME,
    clock,
    start,
    thread_text,
)
from tests.incidents.helpers import (
    audit_of,
    click,
    incident_message,
    incident_row,
    only_incident,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.support import LiveService, wait_for

ALICE = "<@U0ALICE>"
OTHER = "prod-db-cpu"  # on the same route, so the same routing key's lane


def deliveries(service: LiveService, kind: str) -> list[Delivery]:
    with service.runtime.sessions() as db:
        query = sa.select(Delivery).where(Delivery.kind == kind).order_by(Delivery.id)
        return list(db.scalars(query))


def trigger_of(service: LiveService, incident: Incident) -> Delivery:
    [trigger] = [
        d
        for d in deliveries(service, PAGERDUTY_EVENT)
        if d.payload.get("dedup_key") == incident.dedup_key
    ]
    return trigger


def the_call(service: LiveService) -> Delivery:
    [call] = deliveries(service, PAGERDUTY_REST)
    return call


def answers(slack: SlackEmulator, response_url: str) -> list[str]:
    return [str(r.get("text")) for r in responses_to(slack, response_url)]


def run_until(
    service: LiveService, test_clock: ManualClock, done: Callable[[], bool], *, step_s: int = 3
) -> None:
    """Move the test clock on, a step at a time, until `done`: the outbox's retries
    come due as they would over minutes."""

    def moved() -> bool:
        test_clock.advance(seconds=step_s)
        service.runtime.outbox.wake()
        return done()

    wait_for(moved, timeout_s=60, interval_s=0.1)


def page_held_unsent(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> tuple[Incident, Message]:
    """The alarm's incident posted in Slack, its trigger never tried: another alarm's
    trigger met a 429, and the routing key's lane pauses for 10 min."""
    pagerduty.faults.fail_next(1, status=429, retry_after_s=600, calls=("/v2/enqueue",))
    send_alarm(service, sns_signer, OTHER, "ALARM")
    other = wait_for(lambda: only_incident(service, OTHER))
    # Released once its 429 is recorded, which is after the lane's pause began.
    wait_for(lambda: (t := trigger_of(service, other)).attempts >= 1 and t.claimed_by is None)
    send_alarm(service, sns_signer, NAME, "ALARM")
    incident = wait_for(lambda: only_incident(service, NAME))
    message = wait_for(lambda: incident_message(slack, incident))
    assert trigger_of(service, incident).attempts == 0  # held behind the pause
    return incident, message


def test_a_resolve_before_the_page_was_tried_withdraws_it_and_resolves_in_opsbot(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident, message = page_held_unsent(service, sns_signer, slack, pagerduty)

    response_url = slack.response_url()
    click(service, render.RESOLVE, str(incident.id), response_url=response_url)
    wait_for(lambda: deliveries(service, PAGERDUTY_REST))
    run_until(service, clock, lambda: the_call(service).status != "pending")

    row = incident_row(service, incident.id)
    assert (row.status, row.resolved_by) == ("resolved", ALICE)
    assert trigger_of(service, incident).status == "cancelled"
    assert the_call(service).status == "cancelled"
    assert pagerduty.events_for(incident.dedup_key) == []  # nobody paged
    assert pd_calls(pagerduty, "PUT") == []
    withdrawn = "before its page reached PagerDuty: the page is withdrawn"
    thread = wait_for(
        lambda: (text := thread_text(slack, message.ts)) and withdrawn in text and text
    )
    assert "could not" not in thread
    [done] = [a for a in audit_of(service, incident.id) if a.action == "incident.resolve"]
    assert (done.outcome, done.detail["pagerduty"]) == ("ok", "page withdrawn")
    told = "it is withdrawn, and nobody is paged"
    wait_for(lambda: any(told in text for text in answers(slack, response_url)))


def test_an_acknowledge_waits_out_an_events_outage_then_acknowledges_in_pagerduty(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    pagerduty.faults.fail_for(600, status=503, calls=("/v2/enqueue",))
    send_alarm(service, sns_signer, NAME, "ALARM")
    incident = wait_for(lambda: only_incident(service, NAME))
    message = wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: trigger_of(service, incident).attempts >= 1)

    response_url = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident.id), response_url=response_url)
    wait_for(lambda: deliveries(service, PAGERDUTY_REST))
    # Well past the attempts a call gives up after while PagerDuty has no incident yet.
    run_until(
        service,
        clock,
        lambda: the_call(service).attempts >= 30 or the_call(service).status != "pending",
    )
    assert the_call(service).status == "pending"
    assert "could not" not in thread_text(slack, message.ts)
    waits = "waits: its page has not reached PagerDuty yet"
    wait_for(lambda: any(waits in text for text in answers(slack, response_url)))

    pagerduty.faults.clear()  # the outage ends: the page goes, then the acknowledge
    run_until(service, clock, lambda: the_call(service).status != "pending")

    assert the_call(service).status == "sent"
    assert trigger_of(service, incident).status == "sent"
    [there] = pagerduty.incidents_for(incident.dedup_key)
    assert there["status"] == "acknowledged"
    row = incident_row(service, incident.id)
    assert (row.status, row.acknowledged_by) == ("open", ALICE)
    assert "could not" not in thread_text(slack, message.ts)


def test_an_acknowledge_waiting_for_an_unsent_page_gives_way_to_a_resolve_behind_it(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident, message = page_held_unsent(service, sns_signer, slack, pagerduty)
    acked_at = slack.response_url()
    click(service, render.ACKNOWLEDGE, str(incident.id), response_url=acked_at)
    wait_for(lambda: any(d.attempts >= 1 for d in deliveries(service, PAGERDUTY_REST)))
    click(service, render.RESOLVE, str(incident.id), response_url=slack.response_url())
    wait_for(lambda: len(deliveries(service, PAGERDUTY_REST)) == 2)
    run_until(
        service,
        clock,
        lambda: all(d.status != "pending" for d in deliveries(service, PAGERDUTY_REST)),
    )

    ack, resolve = deliveries(service, PAGERDUTY_REST)
    assert (ack.status, (ack.last_error or "").startswith("gave way")) == ("cancelled", True)
    assert resolve.status == "cancelled"
    assert trigger_of(service, incident).status == "cancelled"
    assert pagerduty.events_for(incident.dedup_key) == []
    row = incident_row(service, incident.id)
    assert (row.status, row.resolved_by) == ("resolved", ALICE)
    told = "resolve goes instead"
    wait_for(lambda: any(told in text for text in answers(slack, acked_at)))
    assert "could not" not in thread_text(slack, message.ts)
