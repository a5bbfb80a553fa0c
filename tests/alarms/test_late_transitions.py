"""Transitions that arrive out of order around a resolve (SNS does not keep order).

Found by the storm benchmark: with 32 notifications in flight, an alarm's last
two changes sometimes arrive swapped, and the older ALARM reopened an incident
whose alarm was already OK again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.config import parse_config
from bot.incidents.models import Incident, IncidentEvent
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import T0, alarm, send
from tests.conftest import TEST_CONFIG
from tests.support import LiveService, wait_for


def _service(settings: Settings, make_service: Callable[..., LiveService]) -> LiveService:
    config = parse_config({**TEST_CONFIG, "alarms": {"reopen_window_s": 600}})
    return make_service(settings, config)


def _incident_and_events(service: LiveService) -> tuple[Incident, list[str]]:
    with service.runtime.sessions() as db:
        [incident] = db.scalars(sa.select(Incident)).all()
        kinds = [e.kind for e in db.scalars(sa.select(IncidentEvent).order_by(IncidentEvent.id))]
    return incident, kinds


def _pending_resolves(service: LiveService) -> int:
    with service.runtime.sessions() as db:
        rows = db.scalars(sa.select(Delivery).where(Delivery.status == "pending")).all()
    return sum(1 for d in rows if d.payload.get("action") == "resolve")


def test_an_older_alarm_after_the_resolving_ok_does_not_reopen(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = _service(settings, make_service)
    send(service, sns_signer, alarm("prod-api-5xx", "ALARM", T0))
    wait_for(lambda: pagerduty.events)
    send(service, sns_signer, alarm("prod-api-5xx", "OK", T0 + timedelta(minutes=2)))
    # The ALARM of minute 1 arrives after the OK of minute 2.
    send(service, sns_signer, alarm("prod-api-5xx", "ALARM", T0 + timedelta(minutes=1)))

    incident, kinds = _incident_and_events(service)
    assert incident.status == "resolved" and incident.alarm_state == "OK"
    assert kinds == ["alarm_state", "alarm_state", "late_transition"]
    assert _pending_resolves(service) == 1  # the resolve still goes out after the window
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]


def test_an_alarm_after_its_newer_ok_while_resolved_reopens_and_resolves_again(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = _service(settings, make_service)
    send(service, sns_signer, alarm("prod-api-5xx", "ALARM", T0))
    send(service, sns_signer, alarm("prod-api-5xx", "OK", T0 + timedelta(minutes=1)))
    # Minutes 2 (ALARM) and 3 (OK) arrive swapped: OK first, while resolved.
    send(service, sns_signer, alarm("prod-api-5xx", "OK", T0 + timedelta(minutes=3)))
    send(service, sns_signer, alarm("prod-api-5xx", "ALARM", T0 + timedelta(minutes=2)))

    # As in order: the ALARM reopens the incident (within the window), the OK resolves it;
    # the ALARM, older than that OK, is noted late and its page's resolve left to go.
    incident, kinds = _incident_and_events(service)
    assert incident.status == "resolved" and incident.alarm_state == "OK"
    assert incident.state_changed_at == T0 + timedelta(minutes=3)
    assert kinds == ["alarm_state", "alarm_state", "reopened", "late_transition", "alarm_state"]
    assert _pending_resolves(service) == 1
    # And an ALARM older than that OK is late now.
    send(service, sns_signer, alarm("prod-api-5xx", "ALARM", T0 + timedelta(minutes=2, seconds=30)))
    assert _incident_and_events(service)[1][-1] == "late_transition"
