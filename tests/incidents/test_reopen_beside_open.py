"""PagerDuty reopens an old incident while its alarm has a newer one open."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from bot.clock import ManualClock
from bot.incidents import flows
from bot.incidents import service as incidents
from bot.incidents.models import Incident
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import (  # noqa: F401 (fixtures)
    NAME,
    WEBHOOK_SECRET,
    clock,
    incidents_of,
    start,
)
from tests.incidents.helpers import T0, events_of, incident_row, outbox_idle, page, send_alarm
from tests.incidents.test_webhook_other_service import BOB, post_webhook
from tests.support import LiveService, metric, wait_for


def test_a_reopen_of_an_old_incident_beside_the_alarm_s_open_one_is_recorded_only(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(webhooks=True)
    first_id, _ = page(service, sns_signer, slack, pagerduty)
    [p1] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, first_id).pagerduty_incident_id == p1["id"])
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    clock.advance(minutes=10)
    service.runtime.outbox.wake()
    wait_for(lambda: pagerduty.incidents[p1["id"]]["status"] == "resolved")
    wait_for(lambda: outbox_idle(service))
    clock.advance(minutes=60)  # the alarm fires again: a second incident
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=72))
    wait_for(lambda: len(incidents_of(service)) == 2)
    wait_for(lambda: outbox_idle(service))
    [second_id] = [i.id for i in incidents_of(service) if i.id != first_id]

    body = pagerduty.webhook_body(
        "incident.reopened", {**pagerduty.incidents[p1["id"]], "status": "triggered"}, agent=BOB
    )
    answer = post_webhook(service, body, secret=WEBHOOK_SECRET)

    assert answer[0] == 200, answer
    assert metric(service, "opsbot_pagerduty_webhooks_total", outcome="error") == 0
    assert incident_row(service, first_id).status == "resolved"
    assert incident_row(service, second_id).status == "open"
    [kept] = [e for e in events_of(service, first_id) if e.source_ref == body["event"]["id"]]
    assert f"incident #{second_id} of the same alarm is open" in kept.text
    wait_for(lambda: outbox_idle(service))


@pytest.fixture
def two_of_one_alarm(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> Iterator[tuple[sa.orm.Session, Incident, datetime]]:
    """A resolved incident whose alarm has another one open, locked in a transaction."""
    service = start()
    first_id, _ = page(service, sns_signer, slack, pagerduty)
    clock.advance(minutes=2)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=2))
    clock.advance(minutes=60)
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=62))
    wait_for(lambda: len(incidents_of(service)) == 2)
    wait_for(lambda: outbox_idle(service))
    with service.runtime.sessions() as db:
        incident = incidents.lock(db, incident_id=first_id)
        assert incident is not None and not incident.is_open
        yield db, incident, service.runtime.clock.now()
        db.rollback()


def test_a_failed_flush_inside_message_updated_once_keeps_its_own_error(
    two_of_one_alarm: tuple[sa.orm.Session, Incident, datetime],
) -> None:
    db, incident, now = two_of_one_alarm
    with (
        pytest.raises(IntegrityError),
        flows.message_updated_once(db, incident=incident, now=now, always=True),
    ):
        incident.status = "open"  # beside the alarm's open incident: the unique index says no
        db.flush()
