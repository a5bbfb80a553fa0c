"""A re-ALARM after its incident's PagerDuty resolve was tried: paged again, never left resolved.

A resolve whose attempt got no answer may have been applied by PagerDuty. If
the re-ALARM withdrew it, the alarm would fire with PagerDuty's incident
resolved and nobody paged.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot.clock import ManualClock
from bot.config import parse_config
from bot.outbox.models import PAGERDUTY_EVENT, Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, incident_row, only_incident, outbox_idle, send_alarm
from tests.support import LiveService, wait_for

WINDOW_S = 600
ALARM = "prod-api-5xx"


@pytest.fixture
def clock(sns_signer: SnsSigner) -> Iterator[ManualClock]:
    """The service's time, and the time SNS signs its messages at."""
    clock = ManualClock(T0)
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield clock
    sns_signer.clock = stamped_by


@pytest.fixture
def service(
    settings: Settings, make_service: Callable[..., LiveService], clock: ManualClock
) -> LiveService:
    alarms = {**TEST_CONFIG["alarms"], "reopen_window_s": WINDOW_S}
    config = parse_config({**TEST_CONFIG, "alarms": alarms})
    return make_service(settings, config, clock=clock, run_jobs=False)


def resolve_tried(service: LiveService) -> Delivery | None:
    """The pending resolve, once an attempt at it failed and released its claim."""
    with service.runtime.sessions() as db:
        row = db.scalars(
            sa.select(Delivery).where(
                Delivery.kind == PAGERDUTY_EVENT, Delivery.status == "pending"
            )
        ).first()
    if row is None or row.payload["action"] != "resolve":
        return None
    return row if row.attempts >= 1 and row.claimed_by is None else None


def test_a_re_alarm_after_a_resolve_whose_answer_was_lost_pages_again(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    send_alarm(service, sns_signer, ALARM, "ALARM", T0)
    incident = wait_for(lambda: only_incident(service, ALARM))
    [first] = wait_for(lambda: pagerduty.incidents_for(incident.dedup_key))
    send_alarm(service, sns_signer, ALARM, "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: incident_row(service, incident.id).status == "resolved")

    # The resolve's time comes (this instance's clock is at the end of the window,
    # as another instance's may be a little ahead): PagerDuty applies it, but
    # answers after the client gave up (request_timeout_s is 2).
    pagerduty.faults.hang_next(1, seconds=3.0, calls=("/v2/enqueue",))
    clock.advance(seconds=WINDOW_S)
    service.runtime.outbox.wake()
    tried = wait_for(lambda: resolve_tried(service), timeout_s=20)
    wait_for(lambda: pagerduty.incidents[first["id"]]["status"] == "resolved")

    # The alarm fires again, inside the window: its incident reopens.
    send_alarm(service, sns_signer, ALARM, "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident.id).status == "open")

    clock.advance(seconds=60)  # past any backoff of the resolve
    service.runtime.outbox.wake()
    wait_for(lambda: outbox_idle(service), timeout_s=20)
    opened = [i for i in pagerduty.incidents_for(incident.dedup_key) if i["status"] == "triggered"]
    assert len(opened) == 1 and opened[0]["id"] != first["id"]
    actions = [e["event_action"] for e in pagerduty.events_for(incident.dedup_key)]
    # The tried resolve keeps its turn: sent again before the new page, never after it.
    assert actions == ["trigger", "resolve", "resolve", "trigger"]
    with service.runtime.sessions() as db:
        row = db.get(Delivery, tried.id)
        assert row is not None and row.status == "sent"
