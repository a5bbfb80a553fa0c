"""A window's end and what changes its alarm meanwhile, committed at the same instant
(PostgreSQL): the end pages only what still fires unacknowledged once it holds the
incident, never from what it read before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents import render
from bot.incidents.models import Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    T0,
    click,
    events_of,
    incident_message,
    incident_row,
    message_text,
    only_incident,
    outbox_idle,
    send_alarm,
)
from tests.maintenance.conftest import silence, windows_of
from tests.support import LiveService, wait_for

NAME = "prod-api-5xx"


def held_alarm(
    service: LiveService, clock: ManualClock, sns_signer: SnsSigner, slack: SlackEmulator
) -> Incident:
    """An ALARM held by a 30-min window, posted and not paged; the clock at the window's end."""
    silence(service, slack, f"silence {NAME} for 30m reason deploy")
    send_alarm(service, sns_signer, NAME, "ALARM", T0)
    incident: Incident = wait_for(lambda: only_incident(service, NAME))
    wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: outbox_idle(service))
    assert not incident.paged
    clock.advance(minutes=30)
    return incident


def end_window_while(service: LiveService, meanwhile: Callable[[], object]) -> None:
    """Run the window's end job; `meanwhile` commits in another transaction just after
    the end read the alarms it may page, before it pages any."""
    engine = service.runtime.engine
    [window] = windows_of(service)
    ending = threading.current_thread()
    ran: list[bool] = []

    def after_read(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        candidates = "FROM incidents" in statement and "routing_key_env IS NOT NULL" in statement
        if candidates and threading.current_thread() is ending and not ran:
            ran.append(True)
            with ThreadPoolExecutor(1) as pool:
                pool.submit(meanwhile).result(30)

    sa.event.listen(engine, "after_cursor_execute", after_read)
    try:
        service.runtime.jobs["maintenance.window_end"](window_id=window.id)
    finally:
        sa.event.remove(engine, "after_cursor_execute", after_read)
    assert ran, "the window's end never read the alarms it may page"
    [ended] = windows_of(service)
    assert ended.ended_at is not None


def test_an_ok_committed_while_the_window_ends_is_not_paged_nor_shown_firing(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    if service.runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    held = held_alarm(service, clock, sns_signer, slack)

    def ok() -> None:
        send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=30))
        wait_for(lambda: incident_row(service, held.id).status == "resolved")

    end_window_while(service, ok)
    wait_for(lambda: outbox_idle(service))

    after = incident_row(service, held.id)
    assert after.status == "resolved" and after.alarm_state == "OK"
    assert not after.paged
    assert pagerduty.events_for(held.dedup_key) == []
    assert "maintenance_end" not in [e.kind for e in events_of(service, held.id)]
    message = incident_message(slack, after)
    assert message is not None
    assert render.STATE_WORD["ALARM"] not in message.text, message_text(message)


def test_an_acknowledgement_committed_while_the_window_ends_holds_the_page(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    if service.runtime.engine.dialect.name != "postgresql":
        pytest.skip("SQLite lets one writer at a time in: there is no race to lose")
    held = held_alarm(service, clock, sns_signer, slack)
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])

    def acknowledge() -> None:
        click(service, render.ACKNOWLEDGE, str(held.id), response_url=slack.response_url())
        wait_for(lambda: incident_row(service, held.id).acknowledged_at is not None)

    end_window_while(service, acknowledge)
    wait_for(lambda: outbox_idle(service))

    after = incident_row(service, held.id)
    assert after.is_open and after.acknowledged_at is not None
    assert not after.paged
    assert pagerduty.events_for(held.dedup_key) == []
