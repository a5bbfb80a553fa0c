"""What the end of a hold brings back to a page that still stands: its pending resolve
withdrawn, and its reminders and escalation, whether a window or a silence ends.

The service runs on the test clock with a reopen window of 5 min (a PagerDuty resolve
waits that long before it goes), its paging route reminding after 5 min and escalating
after 15 (tests/alarms/test_late_and_flapping.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa

from bot.clock import ManualClock
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_EVENT, Delivery
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
from tests.alarms.test_pipeline import alarm, send
from tests.incidents.helpers import T0, click, incident_row, page, send_alarm
from tests.incidents.test_silence_and_escalation import jobs, silence_for_30_min
from tests.maintenance.conftest import silence
from tests.support import LiveService, wait_for


def slack_idle(service: LiveService) -> bool:
    """Nothing left to send but PagerDuty events (a resolve waits out the reopen window)."""
    with service.runtime.sessions() as db:
        query = sa.select(sa.func.count()).where(
            Delivery.status == "pending", Delivery.kind != PAGERDUTY_EVENT
        )
        return db.scalar(query) == 0


def end_silence(service: LiveService, slack: SlackEmulator, incident_id: int) -> None:
    """The Silence… menu's "End the silence" (a PagerDuty resolve may still wait)."""
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:{render.UNSILENCE}",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is None)


def paged_silenced_then_no_data(
    service: LiveService,
    test_clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> tuple[int, str]:
    """Paged at 10:00 and silenced (its reminders stop); OK at 10:01 (resolved, its
    PagerDuty resolve waiting until 10:06); no data at 10:02: silenced, the incident goes
    on, open and not in ALARM. Its incident and message's ts."""
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])  # Alice may silence it
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    silence_for_30_min(service, slack, incident_id)
    test_clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    test_clock.advance(minutes=1)
    at = T0 + timedelta(minutes=2)
    assert send(service, sns_signer, alarm(NAME, "INSUFFICIENT_DATA", at)) == 200
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "INSUFFICIENT_DATA")
    return incident_id, message.ts


def fires_with_its_resolve_pending(
    service: LiveService, sns_signer: SnsSigner, incident_id: int
) -> None:
    """ALARM at 10:03 on the open incident: not reopened, so nothing is paged or withdrawn."""
    send_alarm(service, sns_signer, NAME, "ALARM", T0 + timedelta(minutes=3))
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "ALARM")
    wait_for(lambda: slack_idle(service))
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "pending")]
    row = incident_row(service, incident_id)
    assert (row.status, row.acknowledged_at, row.remind_at, row.escalate_at) == (
        "open",
        None,
        None,
        None,
    )


def chased_again(service: LiveService, incident_id: int, *, now: datetime) -> None:
    """The resolve withdrawn, the page stands unacknowledged: reminded and escalated anew."""
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]
    row = incident_row(service, incident_id)
    assert row.remind_at == now + timedelta(minutes=5)
    assert row.escalate_at == now + timedelta(minutes=15)
    reminders = {
        f"incident:{incident_id}:remind": row.remind_at,
        f"incident:{incident_id}:escalate": row.escalate_at,
    }
    wait_for(lambda: jobs(service) == reminders)


def test_a_window_s_end_that_withdraws_a_pending_resolve_brings_the_reminders_back(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, ts = paged_silenced_then_no_data(service, clock, sns_signer, slack, pagerduty)
    _, reply = silence(service, slack, "silence prod-api-* for 1h reason api upgrade")
    assert reply is not None and "Maintenance window #1" in reply, reply
    clock.advance(minutes=1)
    end_silence(service, slack, incident_id)  # not in ALARM: nothing to page or chase
    fires_with_its_resolve_pending(service, sns_signer, incident_id)  # the window holds nothing

    clock.advance(minutes=1)
    _, reply = silence(service, slack, "silence end 1")
    assert reply is not None and "1 alarm(s) still firing were paged" in reply, reply
    said = "still fires: the pending PagerDuty resolve was withdrawn."
    wait_for(lambda: said in thread_text(slack, ts))
    chased_again(service, incident_id, now=clock.now())


def test_a_silence_s_end_that_withdraws_a_pending_resolve_brings_the_reminders_back(
    start: Callable[..., LiveService],  # noqa: F811
    clock: ManualClock,  # noqa: F811
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, ts = paged_silenced_then_no_data(service, clock, sns_signer, slack, pagerduty)
    fires_with_its_resolve_pending(service, sns_signer, incident_id)  # silenced: not paged

    clock.advance(minutes=2)
    end_silence(service, slack, incident_id)
    said = "ended the silence; still in ALARM: the pending PagerDuty resolve was withdrawn."
    wait_for(lambda: said in thread_text(slack, ts))
    chased_again(service, incident_id, now=clock.now())
