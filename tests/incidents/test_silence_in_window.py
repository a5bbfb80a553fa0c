"""What the end of a silence brings back, and what it must not: a page a maintenance
window still holds, or reminders for an alarm no longer in ALARM.

A silence ends at its time (the `incidents.silence_end` job) or by hand ("End the
silence"); both go the same way. The jobs run on the test clock (`due`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from bot.clock import ManualClock
from bot.incidents import render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import Message, SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import alarm, send
from tests.incidents.helpers import (
    T0,
    click,
    events_of,
    incident_message,
    incident_row,
    only_incident,
    outbox_idle,
    page,
    send_alarm,
)
from tests.incidents.test_reminders import due, reminding_config
from tests.incidents.test_silence_and_escalation import (
    end_silence_by_hand,
    jobs,
    silence_for_30_min,
    thread_of,
)
from tests.maintenance.conftest import silence
from tests.support import LiveService, wait_for

DB_ALARM = "prod-db-cpu"
WINDOW_END = T0 + timedelta(hours=4)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    clock: ManualClock,
) -> Iterator[Callable[[], LiveService]]:
    """A service whose jobs run only when the test says, its paging route reminding after
    5 min and escalating after 15; Alice may silence its alarms (she is in its channel)."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield lambda: make_service(settings, reminding_config(5, 15), clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def held_and_silenced(
    service: LiveService, sns_signer: SnsSigner, slack: SlackEmulator, clock: ManualClock
) -> tuple[int, Message]:
    """A window over `prod-db-*` until 14:00; its alarm fires at 10:01 (held, not paged)
    and Alice silences it for 30 min at 10:02."""
    _, reply = silence(service, slack, "silence prod-db-* for 4h reason db upgrade")
    assert reply is not None and "Maintenance window #1" in reply, reply
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, DB_ALARM, "ALARM", T0 + timedelta(minutes=1))
    incident = wait_for(lambda: only_incident(service, DB_ALARM))
    message = wait_for(lambda: incident_message(slack, incident))
    clock.advance(minutes=1)
    silence_for_30_min(service, slack, incident.id)
    wait_for(lambda: outbox_idle(service))
    assert not incident_row(service, incident.id).paged
    return incident.id, message


def paged_when_the_window_ends(
    service: LiveService,
    clock: ManualClock,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    incident_id: int,
    message: Message,
) -> None:
    clock.advance(seconds=(WINDOW_END - clock.now()).total_seconds())
    assert due(service, clock) == ["maintenance:1:end"]
    wait_for(lambda: [e["event_action"] for e in pagerduty.events] == ["trigger"])
    row = incident_row(service, incident_id)
    assert row.paged and row.remind_at == WINDOW_END + timedelta(minutes=5)
    wait_for(
        lambda: (
            "Maintenance window #1 is over and this alarm still fires: paged."
            in thread_of(slack, message.ts)
        )
    )


def test_a_silence_running_out_inside_a_maintenance_window_pages_at_the_window_s_end(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = held_and_silenced(service, sns_signer, slack, clock)

    clock.advance(minutes=30)
    assert due(service, clock) == [f"incident:{incident_id}:silence_end"]
    wait_for(lambda: outbox_idle(service))
    assert pagerduty.events == []  # the window still holds it
    row = incident_row(service, incident_id)
    assert (row.paged, row.silenced_until, row.remind_at, row.escalate_at) == (
        False,
        None,
        None,
        None,
    )
    assert jobs(service) == {"maintenance:1:end": WINDOW_END}
    said = thread_of(slack, message.ts)
    assert "Silence ended; still in ALARM: held by maintenance window #1 until " in said
    assert "paged then if it still fires." in said
    assert [e.kind for e in events_of(service, incident_id)][-2:] == ["unsilenced", "maintenance"]

    paged_when_the_window_ends(service, clock, slack, pagerduty, incident_id, message)


def test_ending_a_silence_by_hand_inside_a_maintenance_window_pages_nothing(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = held_and_silenced(service, sns_signer, slack, clock)

    clock.advance(minutes=5)
    end_silence_by_hand(service, slack, incident_id)
    assert pagerduty.events == []
    assert not incident_row(service, incident_id).paged
    assert (
        "<@U0ALICE> ended the silence; still in ALARM: held by maintenance window #1"
        in thread_of(slack, message.ts)
    )
    wait_for(lambda: jobs(service) == {"maintenance:1:end": WINDOW_END})

    paged_when_the_window_ends(service, clock, slack, pagerduty, incident_id, message)


def test_a_silence_ending_while_its_alarm_is_not_in_alarm_brings_no_reminders(
    start: Callable[[], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:2h",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is not None)
    # OK (PagerDuty's incident resolved), then no data: silenced, so it goes on in the
    # same incident, open in INSUFFICIENT_DATA with nothing to page.
    clock.advance(minutes=10)
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=10))
    wait_for(lambda: [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"])
    clock.advance(minutes=30)
    at = T0 + timedelta(minutes=40)
    assert send(service, sns_signer, alarm("prod-api-5xx", "INSUFFICIENT_DATA", at)) == 200
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "INSUFFICIENT_DATA")
    wait_for(lambda: outbox_idle(service))

    clock.advance(minutes=80)
    assert due(service, clock) == [f"incident:{incident_id}:silence_end"]
    wait_for(lambda: outbox_idle(service))
    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state, row.silenced_until) == ("open", "INSUFFICIENT_DATA", None)
    assert (row.remind_at, row.escalate_at) == (None, None)
    assert jobs(service) == {}
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]
    assert "Silence ended." in thread_of(slack, message.ts)
