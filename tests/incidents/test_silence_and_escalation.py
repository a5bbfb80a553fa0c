"""What a silence ended by hand brings back, and opsbot's escalation overtaken while it waits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.clock import ManualClock
from bot.incidents import render
from bot.outbox.models import PAGERDUTY_REST, Delivery
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    T0,
    audit_of,
    click,
    events_of,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    send_alarm,
)
from tests.incidents.test_reminders import due, reminding_config
from tests.support import LiveService, metric, wait_for

WEBHOOK_SECRET = "whsec-silence"


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
    """A service whose jobs run only when the test says (`due` on the test clock), its
    routes reminding after 5 min and escalating after 15; `webhooks`: PagerDuty's
    webhooks reach it."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    stamped_by, sns_signer.clock = sns_signer.clock, clock

    def make(*, webhooks: bool = False) -> LiveService:
        secrets = {"pagerduty_webhook_secrets": [SecretStr(WEBHOOK_SECRET)]} if webhooks else {}
        service = make_service(
            settings.model_copy(update=secrets),
            reminding_config(5, 15),
            clock=clock,
            run_jobs=False,
        )
        if webhooks:
            pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", WEBHOOK_SECRET)
        return service

    yield make
    sns_signer.clock = stamped_by


def jobs(service: LiveService) -> dict[str, Any]:
    """The scheduler's pending jobs and when they are due."""
    return dict(service.runtime.scheduler.pending())


def thread_of(slack: SlackEmulator, ts: str) -> str:
    """The incident's thread, its replies' texts joined."""
    return "\n".join(m.text for m in slack.thread("C0PRODALERTS", ts))


def end_silence_by_hand(service: LiveService, slack: SlackEmulator, incident_id: int) -> None:
    """The Silence… menu's "End the silence"."""
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:{render.UNSILENCE}",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is None)
    wait_for(lambda: outbox_idle(service))


def silence_for_30_min(service: LiveService, slack: SlackEmulator, incident_id: int) -> None:
    click(
        service,
        render.SILENCE,
        response_url=slack.response_url(),
        selected_option=f"{incident_id}:30m",
    )
    wait_for(lambda: incident_row(service, incident_id).silenced_until is not None)


# -- a silence ended by hand ---------------------------------------------------------------


def test_ending_a_silence_by_hand_pages_the_alarm_still_firing_and_brings_reminders_back(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    silence_for_30_min(service, slack, incident_id)
    # The jobs change after the commit: waited for, not read at once.
    silence_end = {f"incident:{incident_id}:silence_end": T0 + timedelta(minutes=30)}
    wait_for(lambda: jobs(service) == silence_end)
    # OK (PagerDuty's incident resolved), then ALARM again: silenced, so not paged.
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"])
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "ALARM")
    wait_for(lambda: outbox_idle(service))
    assert len(pagerduty.events) == 2

    clock.advance(minutes=3)
    end_silence_by_hand(service, slack, incident_id)
    wait_for(lambda: [e["event_action"] for e in pagerduty.events][-1] == "trigger")
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve", "trigger"]
    row = incident_row(service, incident_id)
    assert row.remind_at == clock.now() + timedelta(minutes=5)
    assert row.escalate_at == clock.now() + timedelta(minutes=15)
    reminders = {
        f"incident:{incident_id}:remind": row.remind_at,
        f"incident:{incident_id}:escalate": row.escalate_at,
    }
    wait_for(lambda: jobs(service) == reminders)
    wait_for(
        lambda: (
            "<@U0ALICE> ended the silence; still in ALARM: paged." in thread_of(slack, message.ts)
        )
    )
    unsilenced = [e for e in events_of(service, incident_id) if e.kind == "unsilenced"]
    assert [(e.actor, e.text) for e in unsilenced] == [("<@U0ALICE>", "")]
    assert audit_of(service, incident_id)[-1].detail == {"via": "button", "minutes": 0}


def test_an_alarm_acknowledged_in_slack_while_silenced_is_not_paged_when_the_silence_ends(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    silence_for_30_min(service, slack, incident_id)
    # OK, then ALARM again under the silence: not paged; someone takes it in Slack.
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"])
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "ALARM")
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by == "<@U0ALICE>")
    wait_for(lambda: outbox_idle(service))

    clock.advance(minutes=3)
    end_silence_by_hand(service, slack, incident_id)
    said = "ended the silence; still in ALARM: not paged, <@U0ALICE> acknowledged it."
    wait_for(lambda: said in thread_of(slack, message.ts))
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"]
    row = incident_row(service, incident_id)
    assert (row.acknowledged_by, row.remind_at, row.escalate_at) == ("<@U0ALICE>", None, None)
    # PagerDuty's incident was resolved: the click acknowledged it in opsbot only.
    assert "pagerduty_refused" not in [e.kind for e in events_of(service, incident_id)]


def test_an_acknowledgement_of_the_episode_before_a_reopen_holds_no_page_back(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    # Alice acknowledges the first episode's page, then silences the alarm.
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None)
    wait_for(lambda: outbox_idle(service))
    silence_for_30_min(service, slack, incident_id)
    # OK (PagerDuty's incident resolved), then ALARM again under the silence.
    send_alarm(service, sns_signer, "prod-api-5xx", "OK", T0 + timedelta(minutes=1))
    wait_for(lambda: [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve"])
    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0 + timedelta(minutes=2))
    wait_for(lambda: incident_row(service, incident_id).alarm_state == "ALARM")
    wait_for(lambda: outbox_idle(service))

    clock.advance(minutes=3)
    end_silence_by_hand(service, slack, incident_id)
    wait_for(lambda: [e["event_action"] for e in pagerduty.events][-1] == "trigger")
    assert [e["event_action"] for e in pagerduty.events] == ["trigger", "resolve", "trigger"]
    wait_for(lambda: "ended the silence; still in ALARM: paged." in thread_of(slack, message.ts))


def test_ending_a_silence_by_hand_gives_an_unacknowledged_page_its_reminders_back(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    silence_for_30_min(service, slack, incident_id)
    row = incident_row(service, incident_id)
    assert row.remind_at is None and row.escalate_at is None  # paused by the silence

    clock.advance(minutes=2)
    end_silence_by_hand(service, slack, incident_id)
    assert [e["event_action"] for e in pagerduty.events] == ["trigger"]  # still open there
    row = incident_row(service, incident_id)
    assert row.remind_at == clock.now() + timedelta(minutes=5)
    assert row.escalate_at == clock.now() + timedelta(minutes=15)
    assert "<@U0ALICE> ended the silence." in thread_of(slack, message.ts)
    wait_for(lambda: len(jobs(service)) == 2)

    clock.advance(minutes=5)
    assert due(service, clock) == [f"incident:{incident_id}:remind"]
    wait_for(lambda: "Still not acknowledged" in thread_of(slack, message.ts))
    clock.advance(minutes=10)
    assert due(service, clock) == [f"incident:{incident_id}:escalate"]
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["body"]["incident"]["escalation_level"] == 2


# -- opsbot's escalation overtaken while PagerDuty is out of reach --------------------------


def attempts_of(service: LiveService, incident_id: int, action: str) -> int | None:
    """How often the incident's pending PagerDuty call `action` was tried (None: none pending)."""
    with service.runtime.sessions() as db:
        attempts = db.scalars(
            sa.select(Delivery.attempts).where(
                Delivery.kind == PAGERDUTY_REST,
                Delivery.order_key == f"pdrest:incident:{incident_id}",
                Delivery.status == "pending",
                Delivery.payload["action"].as_string() == action,
            )
        ).all()
        return attempts[0] if attempts else None


def escalation_closed(service: LiveService, incident_id: int) -> str | None:
    """The status the escalation's delivery was closed with (None while pending)."""
    with service.runtime.sessions() as db:
        statuses = db.scalars(
            sa.select(Delivery.status).where(
                Delivery.kind == PAGERDUTY_REST,
                Delivery.order_key == f"pdrest:incident:{incident_id}",
                Delivery.payload["action"].as_string() == "escalate",
            )
        ).all()
        return statuses[0] if statuses and statuses[0] != "pending" else None


def escalate_during_an_outage(
    service: LiveService, clock: ManualClock, pagerduty: PagerDutyEmulator, incident_id: int
) -> None:
    """The escalation falls due while PagerDuty answers 503, and its first attempt fails."""
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents/",))
    clock.advance(minutes=15)
    assert f"incident:{incident_id}:escalate" in due(service, clock)

    def tried() -> bool:
        clock.advance(seconds=0.5)
        return (attempts_of(service, incident_id, "escalate") or 0) >= 1

    wait_for(tried, timeout_s=20, interval_s=0.25)


def recover_and_settle(
    service: LiveService, clock: ManualClock, pagerduty: PagerDutyEmulator, incident_id: int
) -> str | None:
    """PagerDuty answers again; the escalation's delivery is closed, the outbox idle."""
    pagerduty.faults.clear()

    def closed() -> str | None:
        clock.advance(seconds=0.5)
        status = escalation_closed(service, incident_id)
        return status if status is not None and outbox_idle(service) else None

    closed_with: str | None = wait_for(closed, timeout_s=40, interval_s=0.25)
    return closed_with


def levels_asked(pagerduty: PagerDutyEmulator) -> list[Any]:
    return [
        c["body"]["incident"]["escalation_level"]
        for c in pd_calls(pagerduty, "PUT")
        if "escalation_level" in c["body"]["incident"]
    ]


def escalation_retried(service: LiveService, incident_id: int) -> bool:
    """The escalation's delivery failed an attempt and waits for its next (not claimed)."""
    with service.runtime.sessions() as db:
        rows = db.scalars(
            sa.select(Delivery).where(
                Delivery.kind == PAGERDUTY_REST,
                Delivery.order_key == f"pdrest:incident:{incident_id}",
                Delivery.status == "pending",
                Delivery.payload["action"].as_string() == "escalate",
            )
        ).all()
        return any(r.attempts >= 1 and r.claimed_by is None for r in rows)


def test_an_escalation_held_by_an_outage_steps_aside_for_an_acknowledge_that_then_lands(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    escalate_during_an_outage(service, clock, pagerduty, incident_id)
    # On-call acknowledges while PagerDuty still answers 503: queued behind the escalation.
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: attempts_of(service, incident_id, "acknowledge") is not None)

    closed = recover_and_settle(service, clock, pagerduty, incident_id)
    assert levels_asked(pagerduty) == []
    assert closed == "cancelled"  # stepped aside for the acknowledge
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None)
    assert [c["body"]["incident"].get("status") for c in pd_calls(pagerduty, "PUT")] == [
        "acknowledged"
    ]
    # The acknowledge landed: the escalation due again is gone, and nothing escalates.
    assert incident_row(service, incident_id).escalate_at is None
    wait_for(lambda: f"incident:{incident_id}:escalate" not in jobs(service))
    clock.advance(minutes=5)
    due(service, clock)
    wait_for(lambda: outbox_idle(service))
    assert levels_asked(pagerduty) == []
    thread = thread_of(slack, message.ts)
    assert "Escalation held back: waiting for <@U0ALICE>'s acknowledge first." in thread
    assert "Not escalated after all" not in thread
    records = [(r.actor, r.action, r.outcome) for r in audit_of(service, incident_id)]
    assert ("opsbot", "incident.escalate", "deferred") in records
    assert ("U0ALICE", "incident.acknowledge", "ok") in records
    assert metric(service, "opsbot_escalations_withdrawn_total", reason="deferred") == 1
    assert metric(service, "opsbot_escalations_withdrawn_total", reason="acknowledged") == 0
    assert "escalation_deferred" in [e.kind for e in events_of(service, incident_id)]


def test_an_escalation_that_stepped_aside_for_an_acknowledge_that_gave_up_still_escalates(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    escalate_during_an_outage(service, clock, pagerduty, incident_id)
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: attempts_of(service, incident_id, "acknowledge") is not None)

    def settled() -> bool:  # PagerDuty still out: both deliveries run their course
        clock.advance(seconds=5)
        return (
            escalation_closed(service, incident_id) is not None
            and attempts_of(service, incident_id, "acknowledge") is None
        )

    wait_for(settled, timeout_s=60, interval_s=0.25)
    records = [(r.actor, r.action, r.outcome) for r in audit_of(service, incident_id)]
    assert ("U0ALICE", "incident.acknowledge", "failed") in records
    row = incident_row(service, incident_id)
    assert row.acknowledged_at is None
    assert row.escalate_at is not None  # the escalation is due again
    assert f"incident:{incident_id}:escalate" in jobs(service)
    thread = thread_of(slack, message.ts)
    assert "waiting for <@U0ALICE>'s acknowledge first" in thread
    assert "acknowledged meanwhile" not in thread

    pagerduty.faults.clear()
    clock.advance(minutes=2)
    assert f"incident:{incident_id}:escalate" in due(service, clock)
    wait_for(lambda: levels_asked(pagerduty) == [2])
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).escalation_level == 2)
    assert pd_incident["escalation_level"] == 2
    wait_for(lambda: outbox_idle(service))
    records = [(r.actor, r.action, r.outcome) for r in audit_of(service, incident_id)]
    assert ("opsbot", "incident.escalate", "ok") in records


def test_an_escalation_whose_answer_was_lost_is_not_withdrawn_for_a_later_acknowledge(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    # PagerDuty escalates, but answers after opsbot stopped waiting (and so again
    # when the client tries once more): level 2 may have been paged.
    pagerduty.faults.hang_next(2, seconds=2.05, calls=("/incidents/",), method="PUT")
    clock.advance(minutes=15)
    assert f"incident:{incident_id}:escalate" in due(service, clock)
    wait_for(lambda: levels_asked(pagerduty) == [2, 2], timeout_s=20)
    wait_for(lambda: escalation_retried(service, incident_id), timeout_s=20)
    # On-call acknowledges: queued behind the escalation whose outcome is unknown.
    click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: attempts_of(service, incident_id, "acknowledge") is not None)

    closed = recover_and_settle(service, clock, pagerduty, incident_id)
    assert closed == "sent"  # PagerDuty read first: found at level 2, not asked again
    assert levels_asked(pagerduty) == [2, 2]
    assert metric(service, "opsbot_pagerduty_found_done_total", action="escalate") == 1
    escalations = [
        r.outcome for r in audit_of(service, incident_id) if r.action == "incident.escalate"
    ]
    assert escalations == ["ok"]
    thread = thread_of(slack, message.ts)
    assert "Not escalated" not in thread and "held back" not in thread
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None)
    assert incident_row(service, incident_id).escalation_level == 2


def test_an_escalation_held_by_an_outage_is_withdrawn_when_acknowledged_in_the_pagerduty_app(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(webhooks=True)
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == pd_incident["id"])
    escalate_during_an_outage(service, clock, pagerduty, incident_id)
    pagerduty.act_in_app(pd_incident["id"], status="acknowledged", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None)

    closed = recover_and_settle(service, clock, pagerduty, incident_id)
    assert levels_asked(pagerduty) == []
    assert closed == "cancelled"
    assert pd_calls(pagerduty, "PUT") == []
    assert pd_incident["status"] == "acknowledged"
    assert metric(service, "opsbot_escalations_withdrawn_total", reason="acknowledged") == 1


def test_an_escalation_held_by_an_outage_is_withdrawn_when_silenced_meanwhile(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    escalate_during_an_outage(service, clock, pagerduty, incident_id)
    silence_for_30_min(service, slack, incident_id)

    closed = recover_and_settle(service, clock, pagerduty, incident_id)
    assert levels_asked(pagerduty) == []
    assert closed == "cancelled"
    assert pd_calls(pagerduty, "PUT") == []
    assert metric(service, "opsbot_escalations_withdrawn_total", reason="silenced") == 1
    assert "Not escalated after all: silenced meanwhile." in thread_of(slack, message.ts)


def test_an_escalation_is_not_asked_when_pagerduty_shows_the_incident_acknowledged(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [pd_incident] = pagerduty.incidents.values()
    # Acknowledged in PagerDuty's app; its webhook has not reached opsbot (none subscribed).
    pagerduty.act_in_app(pd_incident["id"], status="acknowledged", user_id="PBOB")
    assert incident_row(service, incident_id).acknowledged_at is None

    clock.advance(minutes=15)
    assert f"incident:{incident_id}:escalate" in due(service, clock)
    closed = wait_for(lambda: escalation_closed(service, incident_id))
    wait_for(lambda: outbox_idle(service))
    assert levels_asked(pagerduty) == []
    assert closed == "cancelled"
    assert pd_calls(pagerduty, "GET", f"/incidents/{pd_incident['id']}")  # it looked
    assert pd_calls(pagerduty, "PUT") == []
    assert pd_incident["escalation_level"] == 1
    assert metric(service, "opsbot_escalations_withdrawn_total", reason="acknowledged") == 1
