"""A page that stands through a flap under a maintenance window: the window holds
nothing, so nothing says it did.

An alarm paged before the window began goes OK during it (its PagerDuty resolve waits
out the reopen window of 5 min) and fires again within that time: the pending resolve
is withdrawn and the page stands, reminders and all. The thread and the timeline must
not say "recorded, not paged", nor the held pages be counted.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents.models import IncidentEvent
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import (  # noqa: F401 (fixtures)
    NAME,
    clock,
    pagerduty_events,
    start,
    thread_text,
)
from tests.incidents.helpers import T0, incident_row, page, send_alarm
from tests.maintenance.conftest import silence
from tests.maintenance.test_window_end_resumes import slack_idle
from tests.support import LiveService, metric, wait_for


def timeline_kinds(service: LiveService, incident_id: int) -> list[str]:
    with service.runtime.sessions() as db:
        query = sa.select(IncidentEvent.kind).where(IncidentEvent.incident_id == incident_id)
        return list(db.scalars(query.order_by(IncidentEvent.id)))


def test_a_flap_under_a_window_keeps_its_page_and_says_nothing_was_held(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])  # Alice may open a window
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    _, reply = silence(service, slack, "silence prod-api-* for 1h reason api upgrade")
    assert reply is not None and "Maintenance window #1" in reply, reply
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")

    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).status == "open")
    wait_for(lambda: slack_idle(service))

    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]
    assert incident_row(service, incident_id).remind_at is not None  # still chased
    assert "not paged" not in thread_text(slack, message.ts)
    assert "maintenance" not in timeline_kinds(service, incident_id)
    assert not metric(service, "opsbot_maintenance_held_pages_total")
