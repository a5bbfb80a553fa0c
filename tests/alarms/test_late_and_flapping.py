"""Late transitions whatever their age, and flaps inside the reopen window: one incident,
one post, one page, and opsbot's reminders kept, on the test clock.

SNS does not keep order (and a redrive from a dead-letter queue comes much later), so
an ALARM can arrive after the OK that followed it; CloudWatch sends nothing more, so an
incident it opened would stay open for good, and a page for it would wake on-call for an
alarm known to have recovered: it is posted and resolved, as in order, but not paged.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.alarms.models import ReceivedMessage
from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents.models import Incident
from bot.outbox.models import PAGERDUTY_EVENT, Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import alarm, send
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    events_of,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.support import LiveService, wait_for

CHANNEL = "C0PRODALERTS"
NAME = "prod-api-5xx"
WEBHOOK_SECRET = "whsec-flapping"


def flapping_config() -> Config:
    """A reopen window of 5 min; the paging route reminds after 5 min and escalates after 15."""
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarms"]["reopen_window_s"] = 300
    data["alarm_routes"][0].update(remind_after_min=5, escalate_after_min=15)
    data["oncall"] = {"pagerduty_from": "opsbot@example.com"}
    return parse_config(data)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[Callable[..., LiveService]]:
    """A service on the test clock whose jobs run only when a test says (`due`);
    `webhooks`: PagerDuty's webhooks reach it."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    stamped_by, sns_signer.clock = sns_signer.clock, clock

    def make(*, webhooks: bool = False) -> LiveService:
        secrets = {"pagerduty_webhook_secrets": [SecretStr(WEBHOOK_SECRET)]} if webhooks else {}
        service = make_service(
            settings.model_copy(update=secrets), flapping_config(), clock=clock, run_jobs=False
        )
        if webhooks:
            pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", WEBHOOK_SECRET)
        return service

    yield make
    sns_signer.clock = stamped_by


def due(service: LiveService, clock: ManualClock) -> list[str]:
    return service.runtime.scheduler.run_due(clock.now())


def incidents_of(service: LiveService) -> list[Incident]:
    with service.runtime.sessions() as db:
        return list(db.scalars(sa.select(Incident).order_by(Incident.id)))


def pagerduty_events(service: LiveService) -> list[tuple[str, str]]:
    """The Events API events opsbot queued, as (action, status)."""
    with service.runtime.sessions() as db:
        query = sa.select(Delivery).where(Delivery.kind == PAGERDUTY_EVENT).order_by(Delivery.id)
        return [(d.payload["action"], d.status) for d in db.scalars(query)]


def outcomes(service: LiveService) -> list[str]:
    with service.runtime.sessions() as db:
        query = sa.select(ReceivedMessage.outcome).order_by(ReceivedMessage.id)
        return list(db.scalars(query))


def thread_text(slack: SlackEmulator, ts: str) -> str:
    return "\n".join(m.text for m in slack.thread(CHANNEL, ts))


# -- late, whatever the age of the incident ----------------------------------------------


def test_an_alarm_older_than_the_ok_applied_is_late_even_after_the_reopen_window(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    # The ALARM of 10:01 comes long after the reopen window (5 min) closed.
    clock.advance(minutes=20)
    service.runtime.outbox.wake()  # the resolve waited out the window: it goes now
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=1))
    wait_for(lambda: outbox_idle(service))

    [incident] = incidents_of(service)
    assert (incident.status, incident.alarm_state) == ("resolved", "OK")
    assert incident.state_changed_at == T0 + timedelta(minutes=2)
    assert [e.kind for e in events_of(service, incident_id)][-1] == "late_transition"
    assert outcomes(service)[-1] == f"late transition for incident {incident_id}: recorded only"
    assert slack.channel_messages(CHANNEL) == [message]  # nothing posted anew
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "sent")]
    [in_pagerduty] = pagerduty.incidents_for(incident.dedup_key)
    assert in_pagerduty["status"] == "resolved"


def test_an_alarm_arriving_after_its_newer_ok_ends_as_in_order_resolved_and_unpaged(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    # The alarm's first two transitions arrive swapped: its OK finds no incident at all.
    clock.advance(minutes=2, seconds=30)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    send_alarm(service, sns_signer, NAME, "ALARM", T0)
    wait_for(lambda: outbox_idle(service))

    # Posted as the ALARM would have been, then resolved by the OK after it; nobody is
    # paged for an alarm known to have recovered.
    [incident] = incidents_of(service)
    assert (incident.status, incident.alarm_state) == ("resolved", "OK")
    assert incident.state_changed_at == T0 + timedelta(minutes=2)
    assert outcomes(service) == [
        "OK with no open incident: nothing to resolve",
        f"incident {incident.id} opened: ALARM, arrived late: not paged; "
        "then OK of 2026-11-25T10:02:00+00:00, arrived first: resolved",
    ]
    [message] = wait_for(lambda: slack.channel_messages(CHANNEL))
    wait_for(lambda: message.text.startswith(":large_green_circle: OK"))
    wait_for(lambda: "(arrived first)" in thread_text(slack, message.ts))
    assert "Not paged: this ALARM of" in thread_text(slack, message.ts)
    assert pagerduty_events(service) == []

    # An older OK still is late; nothing goes to PagerDuty after the reopen window either.
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=1))
    assert [e.kind for e in events_of(service, incident.id)][-1] == "late_transition"
    clock.advance(minutes=5)
    service.runtime.outbox.wake()
    wait_for(lambda: outbox_idle(service))
    assert pagerduty_events(service) == []
    assert pagerduty.incidents_for(incident.dedup_key) == []
    assert incidents_of(service)[0].status == "resolved"


def test_an_alarm_arriving_after_its_newer_ok_long_after_the_last_incident_is_not_paged(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    first_id, first_message = page(service, sns_signer, slack, pagerduty)
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, first_id).status == "resolved")
    clock.advance(minutes=60)
    service.runtime.outbox.wake()
    wait_for(lambda: outbox_idle(service))

    # The alarm fires again at 11:02 and recovers at 11:03, long after the reopen window;
    # its OK arrives first (an SNS retry of the ALARM, two instances).
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=63))
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=62))
    wait_for(lambda: outbox_idle(service))
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "sent")]

    # As in order: a second incident, posted, then resolved by the OK; but not paged.
    old, new = incidents_of(service)
    assert (old.status, old.alarm_state) == ("resolved", "OK")
    assert old.state_changed_at == T0 + timedelta(minutes=2)
    assert (new.status, new.alarm_state) == ("resolved", "OK")
    assert new.state_changed_at == T0 + timedelta(minutes=63)
    assert outcomes(service)[-2:] == [
        "OK with no open incident: nothing to resolve",
        f"incident {new.id} opened: ALARM, arrived late: not paged; "
        "then OK of 2026-11-25T11:03:00+00:00, arrived first: resolved",
    ]
    wait_for(lambda: len(slack.channel_messages(CHANNEL)) == 2)
    assert slack.channel_messages(CHANNEL)[0].ts == first_message.ts
    wait_for(lambda: slack.channel_messages(CHANNEL)[1].text.startswith(":large_green_circle: OK"))
    assert pagerduty.incidents_for(new.dedup_key) == []

    # Any ALARM older than the OK applied is late now, whichever episode it belongs to.
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=1))
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=62, seconds=30))
    assert outcomes(service)[-2:] == [f"late transition for incident {new.id}: recorded only"] * 2
    assert len(incidents_of(service)) == 2


def test_no_data_and_ok_swapped_inside_the_reopen_window_leave_the_incident_ok(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    # Minutes 2 (INSUFFICIENT_DATA) and 3 (OK) arrive swapped, inside the window.
    clock.advance(minutes=2, seconds=30)
    at_3, at_2 = T0 + timedelta(minutes=3), T0 + timedelta(minutes=2)
    assert send(service, sns_signer, alarm(NAME, "OK", at_3, old_state="INSUFFICIENT_DATA")) == 200
    assert send(service, sns_signer, alarm(NAME, "INSUFFICIENT_DATA", at_2, old_state="OK")) == 200

    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state) == ("resolved", "OK")
    assert row.state_changed_at == at_3
    assert outcomes(service)[-1] == (
        f"incident {incident_id} kept resolved: INSUFFICIENT_DATA; "
        "then OK of 2026-11-25T10:03:00+00:00, arrived first"
    )
    wait_for(lambda: "INSUFFICIENT DATA" in thread_text(slack, message.ts))
    wait_for(lambda: slack.channel_messages(CHANNEL)[0].text.startswith(":large_green_circle: OK"))
    assert len(slack.channel_messages(CHANNEL)) == 1

    # The OK is applied on the incident now: an ALARM older than it is late.
    at = T0 + timedelta(minutes=2, seconds=30)
    assert send(service, sns_signer, alarm(NAME, "ALARM", at, old_state="INSUFFICIENT_DATA")) == 200
    assert outcomes(service)[-1] == f"late transition for incident {incident_id}: recorded only"


# -- flaps inside the reopen window ------------------------------------------------------


def test_insufficient_data_between_the_ok_and_the_alarm_reopens_the_same_incident(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    for minute, state, old in [(1, "OK", "ALARM"), (2, "INSUFFICIENT_DATA", "OK")]:
        clock.advance(minutes=1)
        at = T0 + timedelta(minutes=minute)
        assert send(service, sns_signer, alarm(NAME, state, at, old_state=old)) == 200
    wait_for(lambda: "INSUFFICIENT DATA" in thread_text(slack, message.ts))
    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state) == ("resolved", "INSUFFICIENT_DATA")
    assert "(stays resolved)" in thread_text(slack, message.ts)

    clock.advance(minutes=1)
    at = T0 + timedelta(minutes=3)
    assert send(service, sns_signer, alarm(NAME, "ALARM", at, old_state="INSUFFICIENT_DATA")) == 200
    wait_for(lambda: outbox_idle(service))

    [incident] = incidents_of(service)
    assert (incident.status, incident.alarm_state) == ("open", "ALARM")
    assert [e.kind for e in events_of(service, incident_id)][-1] == "reopened"
    assert slack.channel_messages(CHANNEL) == [message]  # one post
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]
    assert len(pagerduty.incidents_for(incident.dedup_key)) == 1  # one page


def test_a_flap_inside_the_reopen_window_keeps_the_reminder_and_the_escalation(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    clock.advance(minutes=3)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=3))
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    # The reminder comes due while the incident is resolved: it does nothing, and is gone.
    clock.advance(minutes=2)
    assert due(service, clock) == [f"incident:{incident_id}:remind"]
    assert dict(service.runtime.scheduler.pending()) == {
        f"incident:{incident_id}:escalate": T0 + timedelta(minutes=15)
    }

    # ALARM again within the window: the resolve is withdrawn and the page stands.
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=7))
    wait_for(lambda: incident_row(service, incident_id).status == "open")
    wait_for(lambda: outbox_idle(service))
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]
    # Its reminder and escalation are due again when they were (the reminder: at once).
    wait_for(
        lambda: (
            dict(service.runtime.scheduler.pending())
            == {
                f"incident:{incident_id}:remind": T0 + timedelta(minutes=5),
                f"incident:{incident_id}:escalate": T0 + timedelta(minutes=15),
            }
        )
    )
    assert due(service, clock) == [f"incident:{incident_id}:remind"]
    wait_for(lambda: "Still not acknowledged after 5 min" in thread_text(slack, message.ts))

    clock.advance(minutes=8)
    assert due(service, clock) == [f"incident:{incident_id}:escalate"]
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["body"]["incident"]["escalation_level"] == 2


# -- two instances reopening one incident at once ----------------------------------------


def waiting_on_a_lock(engine: sa.Engine) -> int:
    """How many sessions of this database wait on a lock (PostgreSQL)."""
    with engine.connect() as connection:
        query = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        return int(connection.scalar(sa.text(query)) or 0)


def test_two_instances_reopening_one_incident_at_once_keep_its_live_page(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    first = start(webhooks=True)
    if first.runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    incident_id, _ = page(first, sns_signer, slack, pagerduty)
    [live] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(first, incident_id).pagerduty_incident_id == live["id"])
    clock.advance(minutes=2)
    send_alarm(first, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(first, incident_id).status == "resolved")
    second = start()

    # The same ALARM reaches both instances (two subscriptions). The first holds the
    # incident's row, having reopened it, until the second waits on it; then commits.
    engine = first.runtime.engine
    held, release = threading.Event(), threading.Event()

    def hold(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("UPDATE incidents SET status=") and not held.is_set():
            held.set()
            release.wait(30)

    clock.advance(minutes=1)
    at = T0 + timedelta(minutes=3)
    sa.event.listen(engine, "after_cursor_execute", hold)
    try:
        with ThreadPoolExecutor(2) as pool:
            reopening = pool.submit(send_alarm, first, sns_signer, NAME, "ALARM", at)
            assert held.wait(15), "the first instance never reopened the incident"
            racing = pool.submit(send_alarm, second, sns_signer, NAME, "ALARM", at)
            wait_for(lambda: waiting_on_a_lock(engine))
            release.set()
            reopening.result(30)
            racing.result(30)
    finally:
        release.set()
        sa.event.remove(engine, "after_cursor_execute", hold)
    wait_for(lambda: outbox_idle(first))

    row = incident_row(first, incident_id)
    assert (row.status, row.pagerduty_incident_id) == ("open", live["id"])
    assert row.pagerduty_superseded_ids == []
    assert pagerduty_events(first) == [("trigger", "sent"), ("resolve", "cancelled")]
    assert outcomes(first)[-2:] == [
        f"incident {incident_id} reopened: ALARM, pending resolve withdrawn",
        f"incident {incident_id} updated: ALARM",
    ]
