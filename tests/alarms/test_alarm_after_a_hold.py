"""An ALARM on an open incident whose page is off: it pages again, or withdraws the resolve.

A silence or a maintenance window can leave an incident open, marked paged, while its
last PagerDuty event is a resolve (pending through the reopen window, or sent): the
alarm went OK, then on in the same incident (a silenced alarm's INSUFFICIENT_DATA
reopens it), and the hold ended while it was not in ALARM, so the hold's end resumed
nothing. The ALARM that follows applies the rule of a hold's end: a resolve still
waiting is withdrawn, a resolve sent is followed by a new page, unless a hold running
then keeps it back or someone acknowledged it in Slack since it reopened.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents import render
from bot.outbox.models import Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_late_and_flapping import (
    NAME,
    WEBHOOK_SECRET,
    due,
    flapping_config,
    outcomes,
    pagerduty_events,
)
from tests.alarms.test_pipeline import alarm, send
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    click,
    events_of,
    incident_row,
    outbox_idle,
    page,
    send_alarm,
)
from tests.incidents.test_silence_and_escalation import (
    end_silence_by_hand,
    jobs,
    silence_for_30_min,
    thread_of,
)
from tests.maintenance.conftest import silence
from tests.support import LiveService, wait_for


def no_reminders_config() -> Config:
    """A reopen window of 5 min, and no reminder nor escalation by opsbot."""
    data: dict[str, Any] = copy.deepcopy(TEST_CONFIG)
    data["alarms"]["reopen_window_s"] = 300
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
    slack: SlackEmulator,
    clock: ManualClock,
) -> Iterator[Callable[..., LiveService]]:
    """A service on the test clock whose jobs run only when a test says (`due`): a reopen
    window of 5 min, its paging route reminding after 5 min and escalating after 15
    (`reminders=False`: neither); Alice may silence its alarms (she is in its channel);
    PagerDuty's webhooks reach it."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    stamped_by, sns_signer.clock = sns_signer.clock, clock

    def make(*, reminders: bool = True) -> LiveService:
        secrets = {"pagerduty_webhook_secrets": [SecretStr(WEBHOOK_SECRET)]}
        config = flapping_config() if reminders else no_reminders_config()
        service = make_service(
            settings.model_copy(update=secrets), config, clock=clock, run_jobs=False
        )
        pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", WEBHOOK_SECRET)
        return service

    yield make
    sns_signer.clock = stamped_by


def idle_until_later(service: LiveService, clock: ManualClock) -> bool:
    """Nothing left in the outbox but what waits for a later time (a resolve)."""
    with service.runtime.sessions() as db:
        due_now = (
            sa.select(sa.func.count())
            .select_from(Delivery)
            .where(Delivery.status == "pending", Delivery.not_before <= clock.now())
        )
        return db.scalar(due_now) == 0


def actions(pagerduty: PagerDutyEmulator) -> list[str]:
    """The Events API events PagerDuty accepted, as their actions."""
    return [e["event_action"] for e in pagerduty.events]


def transition(
    service: LiveService, sns_signer: SnsSigner, clock: ManualClock, state: str, *, old: str
) -> None:
    """The alarm goes from `old` to `state` at the test clock's time (applied on receipt)."""
    assert send(service, sns_signer, alarm(NAME, state, clock.now(), old_state=old)) == 200


def silence_for_2_h(service: LiveService, slack: SlackEmulator, incident_id: int) -> None:
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:2h",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is not None)


def reopened_out_of_alarm_after_the_resolve_went(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> int:
    """Paged at 10:00 and silenced for 2 h; OK at 10:10 (its resolve sent at 10:15); no
    data at 10:20 (open again, silenced); the silence ended by hand at 10:25."""
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    silence_for_2_h(service, slack, incident_id)
    clock.advance(minutes=10)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    clock.advance(minutes=5)
    service.runtime.outbox.wake()
    wait_for(lambda: actions(pagerduty) == ["trigger", "resolve"])
    wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "resolved")
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="OK")
    assert incident_row(service, incident_id).status == "open"
    clock.advance(minutes=5)
    end_silence_by_hand(service, slack, incident_id)
    return incident_id


# -- the silence ended while the alarm was out of ALARM ----------------------------------


def test_an_alarm_after_a_silence_ended_out_of_alarm_withdraws_the_pending_resolve(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    dedup_key = incident_row(service, incident_id).dedup_key
    silence_for_30_min(service, slack, incident_id)
    # OK at 10:01: resolved, its page's resolve waits out the reopen window (10:06).
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    # No data at 10:02: silenced, so the incident goes on, open again.
    clock.advance(minutes=1)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="OK")
    assert incident_row(service, incident_id).status == "open"
    # The silence ends at 10:03, the alarm out of ALARM: nothing to resume then (the
    # resolve waits in the outbox meanwhile).
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

    # ALARM at 10:04, before the resolve's time: the page stands again.
    clock.advance(minutes=1)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    clock.advance(minutes=5)  # past the resolve's time
    service.runtime.outbox.wake()
    wait_for(lambda: outbox_idle(service))

    assert [i["status"] for i in pagerduty.incidents_for(dedup_key)] == ["triggered"]
    assert actions(pagerduty) == ["trigger"]
    assert pagerduty_events(service) == [("trigger", "sent"), ("resolve", "cancelled")]
    assert outcomes(service)[-1] == (
        f"incident {incident_id} updated: ALARM, the pending PagerDuty resolve was withdrawn"
    )
    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state, row.paged) == ("open", "ALARM", True)
    # The silence stopped its reminders: the page standing again is chased again.
    alarmed_at = T0 + timedelta(minutes=4)
    assert row.remind_at == alarmed_at + timedelta(minutes=5)
    assert row.escalate_at == alarmed_at + timedelta(minutes=15)
    wait_for(
        lambda: (
            jobs(service)
            == {
                f"incident:{incident_id}:remind": row.remind_at,
                f"incident:{incident_id}:escalate": row.escalate_at,
            }
        )
    )
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    assert message.ts == slack.channel_messages("C0PRODALERTS")[0].ts


def test_an_alarm_after_a_silence_ended_out_of_alarm_pages_anew_once_the_resolve_went(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id = reopened_out_of_alarm_after_the_resolve_went(
        service, clock, sns_signer, slack, pagerduty
    )
    dedup_key = incident_row(service, incident_id).dedup_key
    [resolved] = pagerduty.incidents_for(dedup_key)
    assert resolved["status"] == "resolved"

    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger", "resolve", "trigger"]
    assert outcomes(service)[-1] == f"incident {incident_id} updated: ALARM, paged"

    old, new = pagerduty.incidents_for(dedup_key)
    assert (old["id"], old["status"], new["status"]) == (resolved["id"], "resolved", "triggered")
    row = incident_row(service, incident_id)
    assert (row.status, row.alarm_state, row.paged) == ("open", "ALARM", True)
    assert row.remind_at == clock.now() + timedelta(minutes=5)
    assert row.escalate_at == clock.now() + timedelta(minutes=15)
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == new["id"])


def test_an_alarm_acknowledged_in_slack_since_it_reopened_is_not_paged_anew(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id = reopened_out_of_alarm_after_the_resolve_went(
        service, clock, sns_signer, slack, pagerduty
    )
    # Alice takes the incident, open again with no data, in Slack.
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by == "<@U0ALICE>")
    wait_for(lambda: outbox_idle(service))

    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    assert outcomes(service)[-1] == (
        f"incident {incident_id} updated: ALARM, not paged, <@U0ALICE> acknowledged it"
    )
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger", "resolve"]
    row = incident_row(service, incident_id)
    assert (row.remind_at, row.escalate_at) == (None, None)


def test_an_alarm_a_running_silence_holds_is_paged_when_the_silence_ends(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    silence_for_2_h(service, slack, incident_id)
    clock.advance(minutes=10)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    clock.advance(minutes=5)
    service.runtime.outbox.wake()
    wait_for(lambda: actions(pagerduty) == ["trigger", "resolve"])
    wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "resolved")
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="OK")

    # ALARM at 10:25 under the silence: kept back, as any transition of a silenced alarm.
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    assert outcomes(service)[-1] == f"incident {incident_id} updated: ALARM, silenced: not paged"
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger", "resolve"]

    clock.advance(minutes=5)
    end_silence_by_hand(service, slack, incident_id)
    wait_for(lambda: actions(pagerduty) == ["trigger", "resolve", "trigger"])
    wait_for(lambda: "ended the silence; still in ALARM: paged." in thread_of(slack, message.ts))


# -- a maintenance window --------------------------------------------------------------


def test_an_alarm_a_maintenance_window_holds_is_paged_at_the_window_s_end(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id = reopened_out_of_alarm_after_the_resolve_went(
        service, clock, sns_signer, slack, pagerduty
    )
    message = slack.channel_messages("C0PRODALERTS")[0]
    _, reply = silence(service, slack, "silence prod-api-* for 1h reason api deploy")
    assert reply is not None and "Maintenance window #1" in reply, reply
    window_end = clock.now() + timedelta(hours=1)

    # ALARM at 10:30, inside the window: held, as a new ALARM under it would be.
    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    assert outcomes(service)[-1].startswith(
        f"incident {incident_id} updated: ALARM, held by maintenance window #1 until "
    )
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger", "resolve"]
    assert [e.kind for e in events_of(service, incident_id)][-2:] == ["alarm_state", "maintenance"]
    wait_for(
        lambda: (
            ":construction: Not paged: held by maintenance window #1"
            in thread_of(slack, message.ts)
        )
    )

    clock.advance(seconds=(window_end - clock.now()).total_seconds())
    assert due(service, clock) == ["maintenance:1:end"]
    wait_for(lambda: actions(pagerduty) == ["trigger", "resolve", "trigger"])
    wait_for(
        lambda: (
            "Maintenance window #1 is over and this alarm still fires: paged."
            in thread_of(slack, message.ts)
        )
    )


def test_an_alarm_after_a_window_ended_out_of_alarm_pages_the_alarm_it_kept_back(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(reminders=False)
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    _, reply = silence(service, slack, "silence prod-api-* for 30m reason api deploy")
    assert reply is not None and "Maintenance window #1" in reply, reply
    # OK at 10:01; its resolve goes at the reopen window's end (10:06), the moment the
    # ALARM reopens the incident (another instance's clock runs ahead as well): it
    # cannot be withdrawn, and the window holds the new page.
    clock.advance(minutes=1)
    send_alarm(service, sns_signer, NAME, "OK", clock.now())
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    clock.advance(minutes=5)
    service.runtime.outbox.wake()
    wait_for(lambda: actions(pagerduty) == ["trigger", "resolve"])
    wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "resolved")
    transition(service, sns_signer, clock, "ALARM", old="OK")
    assert outcomes(service)[-1] == (
        f"incident {incident_id} reopened: ALARM, silenced: not paged again"
    )
    # No data at 10:10; the window ends at 10:30, the alarm out of ALARM.
    clock.advance(minutes=4)
    transition(service, sns_signer, clock, "INSUFFICIENT_DATA", old="ALARM")
    clock.advance(minutes=20)
    assert due(service, clock) == ["maintenance:1:end"]
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger", "resolve"]

    clock.advance(minutes=5)
    transition(service, sns_signer, clock, "ALARM", old="INSUFFICIENT_DATA")
    wait_for(lambda: outbox_idle(service))
    assert actions(pagerduty) == ["trigger", "resolve", "trigger"]
    assert outcomes(service)[-1] == f"incident {incident_id} updated: ALARM, paged"
    dedup_key = incident_row(service, incident_id).dedup_key
    assert [i["status"] for i in pagerduty.incidents_for(dedup_key)] == ["resolved", "triggered"]
