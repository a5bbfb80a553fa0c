"""An alarm that fires again after on-call resolved its page in PagerDuty's app is paged again.

opsbot holds its own resolve back through the reopen window, so that a flap keeps its
page; but a page resolved in PagerDuty meanwhile no longer stands, whatever opsbot's
resolve was going to do: withdrawing that resolve pages nobody. What PagerDuty said
(`pagerduty_status`, from its webhooks) decides, for a flap and for a hold's end.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.clock import ManualClock
from bot.incidents import render
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_alarm_after_a_hold import (
    actions,
    idle_until_later,
    silence_for_2_h,
    start,
    transition,
)
from tests.alarms.test_late_and_flapping import NAME, clock, due, outcomes, pagerduty_events
from tests.incidents.helpers import (
    click,
    incident_message,
    incident_row,
    message_text,
    outbox_idle,
    page,
    send_alarm,
)
from tests.incidents.test_silence_and_escalation import end_silence_by_hand, thread_of
from tests.maintenance.conftest import silence
from tests.support import LiveService, wait_for

__all__ = ["clock", "start"]  # fixtures

PAGED_AGAIN = "paged again, as its PagerDuty incident was resolved"


def paged_then_ok(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    *,
    silenced: bool = False,
) -> tuple[int, str]:
    """Paged at 10:00 (`silenced`: and silenced for 2 h); OK at 10:02, its resolve held
    back until 10:07: the incident's id and its PagerDuty incident's."""
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [live] = pagerduty.incidents_for(incident_row(service, incident_id).dedup_key)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == live["id"])
    if silenced:
        silence_for_2_h(service, slack, incident_id)
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    return incident_id, live["id"]


def resolved_in_the_app(service: LiveService, pagerduty: PagerDutyEmulator, incident: int) -> None:
    """On-call sees the alarm recovered and resolves the page in PagerDuty's app."""
    [live] = pagerduty.incidents_for(incident_row(service, incident).dedup_key)
    pagerduty.act_in_app(live["id"], status="resolved", user_id="PALICE")
    wait_for(lambda: incident_row(service, incident).pagerduty_status == "resolved")


def paged_anew(service: LiveService, pagerduty: PagerDutyEmulator, incident_id: int) -> str:
    """The one PagerDuty incident open for the alarm, a new one: its id."""
    dedup_key = incident_row(service, incident_id).dedup_key
    old, new = pagerduty.incidents_for(dedup_key)
    assert (old["status"], new["status"]) == ("resolved", "triggered")
    return str(new["id"])


def test_a_flap_after_the_page_was_resolved_in_pagerduty_pages_again(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, first = paged_then_ok(service, clock, sns_signer, slack, pagerduty)
    resolved_in_the_app(service, pagerduty, incident_id)

    # ALARM at 10:03, inside the reopen window.
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now())
    wait_for(lambda: outbox_idle(service))

    assert outcomes(service)[-1] == f"incident {incident_id} reopened: ALARM, {PAGED_AGAIN}"
    # The resolve is withdrawn all the same: left waiting, it would hold the page back.
    assert pagerduty_events(service) == [
        ("trigger", "sent"),
        ("resolve", "cancelled"),
        ("trigger", "sent"),
    ]
    assert actions(pagerduty) == ["trigger", "trigger"]
    new = paged_anew(service, pagerduty, incident_id)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == new)
    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state, row.paged) == ("open", "ALARM", True)
    assert row.pagerduty_superseded_ids == [first]
    # A new page: its reminders start over.
    assert row.remind_at == clock.now() + timedelta(minutes=5)
    assert row.escalate_at == clock.now() + timedelta(minutes=15)
    message = incident_message(slack, row)
    assert message is not None
    wait_for(
        lambda: (
            "Paged again: the alarm fires again, and its PagerDuty incident was resolved."
            in thread_of(slack, message.ts)
        )
    )
    wait_for(lambda: "triggered" in message_text(slack.channel_messages(row.channel)[0]))


def test_a_flap_after_the_page_was_acknowledged_in_pagerduty_keeps_the_page(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """An acknowledged page stands: the flap withdraws the resolve, as for any flap."""
    service = start()
    incident_id, first = paged_then_ok(service, clock, sns_signer, slack, pagerduty)
    pagerduty.act_in_app(first, status="acknowledged", user_id="PALICE")
    wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "acknowledged")

    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now())
    wait_for(lambda: outbox_idle(service))

    assert outcomes(service)[-1] == (
        f"incident {incident_id} reopened: ALARM, pending resolve withdrawn"
    )
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]
    assert [i["status"] for i in pagerduty.incidents.values()] == ["acknowledged"]


def test_a_flap_a_silence_held_after_the_page_was_resolved_in_pagerduty_pages_at_its_end(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, _ = paged_then_ok(service, clock, sns_signer, slack, pagerduty, silenced=True)
    resolved_in_the_app(service, pagerduty, incident_id)

    # ALARM at 10:03 under the silence: kept back.
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now())
    assert outcomes(service)[-1] == (
        f"incident {incident_id} reopened: ALARM, silenced: not paged again"
    )
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger"]

    # The silence ends at 10:04, the alarm still in ALARM: its page is off, so it is paged.
    clock.advance(minutes=1)
    end_silence_by_hand(service, slack, incident_id)
    wait_for(lambda: actions(pagerduty) == ["trigger", "trigger"])
    paged_anew(service, pagerduty, incident_id)
    message = slack.channel_messages("C0PRODALERTS")[0]
    wait_for(
        lambda: f"ended the silence; still in ALARM: {PAGED_AGAIN}." in thread_of(slack, message.ts)
    )


def test_an_alarm_after_a_silence_ended_out_of_alarm_pages_when_pagerduty_resolved_it(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """The rule of a hold's end, applied by the next ALARM (bot/alarms/service.py
    `_page_again_if_off`): the resolve still waits, but withdrawing it pages nobody."""
    service = start()
    incident_id, _ = paged_then_ok(service, clock, sns_signer, slack, pagerduty, silenced=True)
    resolved_in_the_app(service, pagerduty, incident_id)
    # No data at 10:03: silenced, so the incident goes on, open again; the silence ends
    # at 10:04, out of ALARM: nothing to resume then.
    clock.advance(minutes=1)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="OK")
    assert incident_row(service, incident_id).status == "open"
    clock.advance(minutes=1)
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:{render.UNSILENCE}",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is None)
    wait_for(lambda: idle_until_later(service, clock))
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "pending")]

    # ALARM at 10:05, before the resolve's time.
    clock.advance(minutes=1)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    wait_for(lambda: outbox_idle(service))

    assert outcomes(service)[-1] == f"incident {incident_id} updated: ALARM, {PAGED_AGAIN}"
    assert pagerduty_events(service) == [
        ("trigger", "sent"),
        ("resolve", "cancelled"),
        ("trigger", "sent"),
    ]
    paged_anew(service, pagerduty, incident_id)
    row = incident_row(service, incident_id)
    assert row.remind_at == clock.now() + timedelta(minutes=5)


def test_an_alarm_after_a_silence_ended_out_of_alarm_pages_the_flap_it_kept_back(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """The flap the silence kept back withdrew the resolve: the alarm's last event is
    its first trigger, and only what PagerDuty said tells that nobody is paged."""
    service = start()
    incident_id, _ = paged_then_ok(service, clock, sns_signer, slack, pagerduty, silenced=True)
    resolved_in_the_app(service, pagerduty, incident_id)
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now())
    # No data at 10:04; the silence ends at 10:05, out of ALARM: nothing to resume then.
    clock.advance(minutes=1)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="ALARM")
    clock.advance(minutes=1)
    end_silence_by_hand(service, slack, incident_id)
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]

    clock.advance(minutes=1)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    wait_for(lambda: outbox_idle(service))

    assert outcomes(service)[-1] == f"incident {incident_id} updated: ALARM, {PAGED_AGAIN}"
    assert actions(pagerduty) == ["trigger", "trigger"]
    paged_anew(service, pagerduty, incident_id)


def test_a_flap_a_window_held_after_the_page_was_resolved_in_pagerduty_pages_at_its_end(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(reminders=False)
    incident_id, _ = paged_then_ok(service, clock, sns_signer, slack, pagerduty)
    resolved_in_the_app(service, pagerduty, incident_id)
    _, reply = silence(service, slack, "silence prod-api-* for 1h reason api deploy")
    assert reply is not None and "Maintenance window #1" in reply, reply
    window_end = clock.now() + timedelta(hours=1)

    # ALARM at 10:03, inside the reopen window and the maintenance window: held.
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", clock.now())
    assert outcomes(service)[-1] == (
        f"incident {incident_id} reopened: ALARM, silenced: not paged again"
    )
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger"]

    clock.advance(seconds=(window_end - clock.now()).total_seconds())
    assert due(service, clock) == ["maintenance:1:end"]
    wait_for(lambda: actions(pagerduty) == ["trigger", "trigger"])
    paged_anew(service, pagerduty, incident_id)
    message = slack.channel_messages("C0PRODALERTS")[0]
    wait_for(
        lambda: (
            f"Maintenance window #1 is over and this alarm still fires: {PAGED_AGAIN}."
            in thread_of(slack, message.ts)
        )
    )
