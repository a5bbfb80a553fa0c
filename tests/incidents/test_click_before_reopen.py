"""A person's acknowledge or resolve that waits out a PagerDuty outage while its alarm
goes OK and fires again (a flap inside the reopen window) is of the episode that ended:
it is not applied to the one that stands, whose page nobody has seen."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_REST, Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import (  # noqa: F401 (fixtures)
    NAME,
    clock,
    start,
    thread_text,
)
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    audit_of,
    click,
    events_of,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.support import LiveService, wait_for

ALICE = "<@U0ALICE>"


def rest_calls(service: LiveService) -> list[Delivery]:
    with service.runtime.sessions() as db:
        query = sa.select(Delivery).where(Delivery.kind == PAGERDUTY_REST).order_by(Delivery.id)
        return list(db.scalars(query))


def flap(
    service: LiveService,
    service_clock: ManualClock,
    sns_signer: SnsSigner,
    *,
    clock_moves: bool = True,
) -> None:
    """OK, then ALARM a minute later: inside the reopen window, the incident reopens.
    `clock_moves`: False keeps opsbot's clock still, and a call waiting to be tried
    again waits on."""
    service_clock.advance(minutes=2 if clock_moves else 0)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    service_clock.advance(minutes=1 if clock_moves else 0)
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=3))


def settle(service: LiveService, service_clock: ManualClock) -> None:
    """Every PagerDuty call done, on a clock that moves on for the retries' backoff."""

    def settled() -> bool:
        service_clock.advance(seconds=1)
        calls_done = all(d.status != "pending" for d in rest_calls(service))
        return calls_done and outbox_idle(service)

    wait_for(settled, timeout_s=60, interval_s=0.25)


def clicked_through_an_outage(
    service: LiveService,
    service_clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    action_id: str,
    *,
    clock_moves: bool = True,
) -> tuple[int, str]:
    """Alice clicks while PagerDuty's REST API answers 503; the alarm flaps before it
    answers again (`flap`). The incident's id and its message's ts."""
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents/",))
    click(service, action_id, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: any(d.attempts >= 1 for d in rest_calls(service)), timeout_s=20)
    flap(service, service_clock, sns_signer, clock_moves=clock_moves)
    return incident_id, message.ts


def test_a_resolve_asked_before_the_alarm_fired_again_does_not_resolve_its_new_page(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(webhooks=True)
    incident_id, ts = clicked_through_an_outage(
        service, clock, sns_signer, slack, pagerduty, render.RESOLVE
    )
    pagerduty.faults.clear()
    settle(service, clock)

    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state, row.resolved_by) == ("open", "ALARM", None)
    [page_there] = pagerduty.incidents.values()
    assert page_there["status"] == "triggered"
    assert pd_calls(pagerduty, "PUT") == []  # PagerDuty was not asked
    [call] = rest_calls(service)
    assert call.status == "cancelled" and (call.last_error or "").startswith("obsolete")
    assert f"{ALICE} asked to resolve this incident before it reopened" in thread_text(slack, ts)
    [kind] = [e.kind for e in events_of(service, incident_id) if e.actor == ALICE]
    assert kind == "earlier_episode"
    [obsolete] = [a for a in audit_of(service, incident_id) if a.outcome == "obsolete"]
    assert obsolete.action == "incident.resolve"
    assert obsolete.detail["delivery"] == call.id


def test_an_acknowledge_asked_before_the_alarm_fired_again_leaves_its_new_page_unacknowledged(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(webhooks=True)
    incident_id, ts = clicked_through_an_outage(
        service, clock, sns_signer, slack, pagerduty, render.ACKNOWLEDGE
    )
    pagerduty.faults.clear()
    settle(service, clock)

    row = incident_row(service, incident_id)
    assert (row.status, row.acknowledged_at, row.acknowledged_by) == ("open", None, None)
    [page_there] = pagerduty.incidents.values()
    assert page_there["status"] == "triggered"
    assert pd_calls(pagerduty, "PUT") == []
    assert f"{ALICE} asked to acknowledge this incident before it reopened" in thread_text(
        slack, ts
    )


def test_a_click_on_the_new_episode_is_not_held_up_by_one_on_the_last_and_goes_through(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(webhooks=True)
    incident_id, _ = clicked_through_an_outage(
        service, clock, sns_signer, slack, pagerduty, render.RESOLVE, clock_moves=False
    )
    assert [(d.status, d.attempts) for d in rest_calls(service)] == [("pending", 1)]
    # Alice sees the alarm fire again and resolves it again, while her first call
    # still waits to be tried again: not "being resolved by Alice", for that call is
    # of the episode that ended.
    click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: len(rest_calls(service)) == 2, timeout_s=20)
    pagerduty.faults.clear()
    settle(service, clock)

    row = incident_row(service, incident_id)
    assert (row.status, row.resolved_by) == ("resolved", ALICE)
    [page_there] = pagerduty.incidents.values()
    assert page_there["status"] == "resolved"
    assert [d.status for d in rest_calls(service)] == ["cancelled", "sent"]


def patient_config() -> Any:
    """The flapping config, with PagerDuty's answers awaited long enough for a flap
    to happen while one hangs."""
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarms"]["reopen_window_s"] = 300
    data["alarm_routes"][0].update(remind_after_min=5, escalate_after_min=15)
    data["oncall"] = {"pagerduty_from": "opsbot@example.com"}
    data["delivery"].update(request_timeout_s=6.0, lease_s=12.0)
    return parse_config(data)


def test_a_resolve_that_reached_pagerduty_as_the_incident_reopened_does_not_close_it(
    start: Callable[..., LiveService],  # noqa: F811  (the signer on the test clock)
    settings: Settings,
    make_service: Callable[..., LiveService],
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # Without PagerDuty's webhooks: what opsbot records of its own call, not what
    # PagerDuty says of its incident afterwards.
    service = make_service(settings, patient_config(), clock=clock, run_jobs=False)
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    pagerduty.faults.hang_next(1, seconds=3.5, calls=("/incidents/",), method="PUT")
    click(service, render.RESOLVE, str(incident_id), response_url=slack.response_url())
    # Past the look at the episode before the call: the call hangs in PagerDuty.
    wait_for(lambda: any(d.claimed_by for d in rest_calls(service)), timeout_s=20)
    time.sleep(0.3)
    flap(service, clock, sns_signer)
    settle(service, clock)

    assert [c["body"]["incident"]["status"] for c in pd_calls(pagerduty, "PUT")] == ["resolved"]
    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state, row.resolved_by) == ("open", "ALARM", None)
    assert "PagerDuty took it as it reopened" in thread_text(slack, message.ts)
    [obsolete] = [a for a in audit_of(service, incident_id) if a.outcome == "obsolete"]
    assert obsolete.detail["pagerduty_incident"] == next(iter(pagerduty.incidents))
