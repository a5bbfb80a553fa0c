"""What PagerDuty says about an incident's state, in whatever order it arrives.

A reopen or an un-acknowledge in PagerDuty leaves nobody holding the page: Slack
shows it unacknowledged, and opsbot chases it again. A webhook of a change older
than what a REST answer recorded is late, and an incident of someone else's that
PagerDuty resolved before its trigger came is not posted at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot.clock import ManualClock
from bot.incidents import render
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    T0,
    click,
    events_of,
    incident_row,
    message_text,
    outbox_idle,
    page,
)
from tests.incidents.test_reminders import reminding_config
from tests.incidents.test_webhook_other_service import BOB, post_webhook
from tests.incidents.test_webhook_races import webhooks_held
from tests.incidents.test_webhooks import SECRET
from tests.incidents.test_webhooks import webhook_service as webhook_service
from tests.support import LiveService, wait_for


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def chasing_service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    pagerduty: PagerDutyEmulator,
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[LiveService]:
    """Webhooks on, and a route that reminds after 5 min and escalates after 15, on a
    test clock whose jobs run only when the test says."""
    pagerduty.add_user("POPSBOT", "opsbot", "opsbot@example.com")
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    secrets = {"pagerduty_webhook_secrets": [SecretStr(SECRET)]}
    service = make_service(
        settings.model_copy(update=secrets), reminding_config(5, 15), clock=clock, run_jobs=False
    )
    pagerduty.subscribe_webhook(service.url + "/pagerduty/webhooks", SECRET)
    yield service
    sns_signer.clock = stamped_by


def chased(service: LiveService) -> dict[str, datetime | None]:
    """The reminder and escalation jobs waiting, by id, with when they are due."""
    return dict(service.runtime.scheduler.pending())


def test_a_reopen_in_pagerduty_drops_the_old_acknowledgement_and_chases_the_page_again(
    chasing_service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = chasing_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    pagerduty.act_in_app(ours["id"], status="acknowledged", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by is not None)
    pagerduty.act_in_app(ours["id"], status="resolved", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    wait_for(lambda: outbox_idle(service))
    wait_for(lambda: chased(service) == {})  # cancelled once its change is committed
    clock.advance(minutes=30)

    # PagerDuty reopens it: triggered again, nobody has acknowledged this episode.
    with pagerduty.lock:
        ours.update(status="triggered", acknowledgements=[])
        body = pagerduty.webhook_body("incident.reopened", dict(ours), agent=BOB)
    assert post_webhook(service, body)[0] == 200

    row = incident_row(service, incident_id)
    assert (row.status, row.acknowledged_at, row.acknowledged_by) == ("open", None, None)
    now = T0 + timedelta(minutes=30)
    assert (row.remind_at, row.escalate_at) == (
        now + timedelta(minutes=5),
        now + timedelta(minutes=15),
    )
    chase = {
        f"incident:{incident_id}:remind": now + timedelta(minutes=5),
        f"incident:{incident_id}:escalate": now + timedelta(minutes=15),
    }
    wait_for(lambda: chased(service) == chase)  # scheduled once its change is committed
    wait_for(lambda: render.ACKNOWLEDGE in str(message.blocks))

    # Acknowledged there again: Slack follows, and the chase ends.
    pagerduty.act_in_app(ours["id"], status="acknowledged", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by is not None)
    wait_for(lambda: render.ACKNOWLEDGE not in str(message.blocks))
    wait_for(lambda: chased(service) == {})  # cancelled once its change is committed
    wait_for(lambda: outbox_idle(service))


def test_an_acknowledgement_that_times_out_in_pagerduty_is_chased_again(
    chasing_service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = chasing_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    pagerduty.act_in_app(ours["id"], status="acknowledged", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by is not None)
    wait_for(lambda: chased(service) == {})  # cancelled once its change is committed
    clock.advance(minutes=40)

    pagerduty.unacknowledge_in_app(ours["id"])

    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is None)
    now = T0 + timedelta(minutes=40)
    chase = {
        f"incident:{incident_id}:remind": now + timedelta(minutes=5),
        f"incident:{incident_id}:escalate": now + timedelta(minutes=15),
    }
    wait_for(lambda: chased(service) == chase)  # scheduled once its change is committed
    wait_for(lambda: outbox_idle(service))


def test_an_acknowledged_page_escalated_in_pagerduty_is_chased_again(
    chasing_service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    # Someone escalates by hand in PagerDuty: the next level is paged, and nobody holds
    # it any more, so opsbot reminds and escalates again, as after a reopen.
    service = chasing_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    pagerduty.act_in_app(ours["id"], status="acknowledged", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).acknowledged_by is not None)
    wait_for(lambda: chased(service) == {})  # cancelled once its change is committed
    clock.advance(minutes=20)

    with pagerduty.lock:
        # The next level's on-call (Bob) is assigned: PagerDuty's level is told by no field.
        ours.update(
            status="triggered",
            acknowledgements=[],
            escalation_level=2,
            assignments=[{"at": ours["created_at"], "assignee": BOB}],
        )
        body = pagerduty.webhook_body("incident.escalated", dict(ours), agent=BOB)
    assert post_webhook(service, body)[0] == 200

    row = incident_row(service, incident_id)
    assert (row.acknowledged_at, row.escalation_level) == (None, 2)
    now = T0 + timedelta(minutes=20)
    chase = {
        f"incident:{incident_id}:remind": now + timedelta(minutes=5),
        f"incident:{incident_id}:escalate": now + timedelta(minutes=15),
    }
    wait_for(lambda: chased(service) == chase)  # scheduled once its change is committed
    wait_for(lambda: render.ACKNOWLEDGE in str(message.blocks))
    wait_for(lambda: outbox_idle(service))


def test_a_late_webhook_from_before_a_slack_acknowledge_does_not_undo_it(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    # PagerDuty escalated it by itself after the trigger; that webhook is slow to come.
    # (The emulator's clock shows whole seconds: the acknowledge comes a second later.)
    triggered_at = incident_row(service, incident_id).pagerduty_synced_at
    assert triggered_at is not None
    late = pagerduty.webhook_body(
        "incident.escalated", {**ours, "status": "triggered", "escalation_level": 2}, agent=None
    )
    late["event"]["occurred_at"] = _iso(triggered_at + timedelta(milliseconds=500))
    wait_for(lambda: datetime.now(UTC) >= triggered_at + timedelta(seconds=1))
    with webhooks_held(pagerduty):
        click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
        wait_for(lambda: incident_row(service, incident_id).pagerduty_status == "acknowledged")
        wait_for(lambda: outbox_idle(service))  # the answer recorded

        status, outcome = post_webhook(service, late)

    assert status == 200 and "recorded only" in outcome, outcome
    row = incident_row(service, incident_id)
    assert (row.acknowledged_by, row.pagerduty_status) == ("<@U0ALICE>", "acknowledged")
    assert row.escalation_level is None  # no answer says a level, and the late one is not applied
    [kept] = [e for e in events_of(service, incident_id) if e.kind == "pagerduty"]
    assert kept.text == "incident.escalated arrived after a newer change: not applied"
    wait_for(lambda: outbox_idle(service))


def test_an_escalation_after_the_resolve_changes_nothing(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    pagerduty.act_in_app(ours["id"], status="resolved", user_id="PBOB")
    wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    wait_for(lambda: outbox_idle(service))
    shown, level = message_text(message), incident_row(service, incident_id).escalation_level
    # A webhook that says so, in PagerDuty's order after the resolve (which PagerDuty
    # would not send without a reopen first).
    body = pagerduty.webhook_body(
        "incident.escalated", {**ours, "status": "resolved", "escalation_level": 2}, agent=BOB
    )

    assert post_webhook(service, body)[0] == 200

    row = incident_row(service, incident_id)
    assert (row.status, row.pagerduty_status) == ("resolved", "resolved")
    assert row.escalation_level == level
    assert "escalated" not in [e.kind for e in events_of(service, incident_id)]
    wait_for(lambda: outbox_idle(service))
    assert message_text(message) == shown


def test_someone_elses_incident_whose_trigger_comes_after_its_resolve_is_not_posted(
    webhook_service: LiveService,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = webhook_service
    with webhooks_held(pagerduty):
        opened = pagerduty.open_in_app("PSERVICE", title="Customers report 502s", user_id="PBOB")
        at = datetime.now(UTC)
        trigger = pagerduty.webhook_body("incident.triggered", dict(opened), agent=BOB)
        trigger["event"]["occurred_at"] = _iso(at)
        pagerduty.act_in_app(opened["id"], status="resolved", user_id="PBOB")
        with pagerduty.lock:
            resolved = dict(pagerduty.incidents[opened["id"]])
        resolve = pagerduty.webhook_body("incident.resolved", resolved, agent=BOB)
        resolve["event"]["occurred_at"] = _iso(at + timedelta(seconds=30))

    # The trigger's first delivery failed (opsbot was restarting): its retry comes last.
    assert post_webhook(service, resolve)[0] == 200
    status, outcome = post_webhook(service, trigger)

    assert status == 200 and "resolved" in outcome, outcome
    wait_for(lambda: outbox_idle(service))
    assert slack.channel_messages("C0ALERTS") == []
    with service.runtime.sessions() as db:
        assert db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 0


def test_an_event_that_cannot_be_placed_is_logged_with_its_ids(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    # Another PagerDuty incident with our dedup key, while PagerDuty's REST API is down.
    other = {**ours, "id": "QOTHER", "status": "acknowledged"}
    body = pagerduty.webhook_body("incident.acknowledged", other, agent=BOB)
    pagerduty.faults.fail_for(600, status=503, calls=("/incidents",), method="GET")
    try:
        with caplog.at_level("WARNING", logger="bot.incidents.pagerduty_sync"):
            assert post_webhook(service, body)[0] == 200
    finally:
        pagerduty.faults.clear()

    [said] = [r for r in caplog.records if "cannot tell whether" in r.getMessage()]
    assert body["event"]["id"] in said.getMessage() and "QOTHER" in said.getMessage()
    fields = {
        k: getattr(said, k, None) for k in ("pagerduty_event", "incident", "pagerduty_incident")
    }
    assert fields == {
        "pagerduty_event": body["event"]["id"],
        "incident": incident_id,
        "pagerduty_incident": "QOTHER",
    }
    wait_for(lambda: outbox_idle(service))


def test_an_answer_slower_than_a_later_resolve_in_pagerduty_does_not_undo_it(
    webhook_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    """Alice's acknowledge lands in PagerDuty, its answer is slow; meanwhile Bob
    resolves in PagerDuty's app and that webhook is applied. The answer, of an older
    change, must not show PagerDuty as acknowledged again."""
    service = webhook_service
    incident_id, _ = page(service, sns_signer, slack, pagerduty)
    [ours] = pagerduty.incidents.values()
    wait_for(lambda: incident_row(service, incident_id).pagerduty_incident_id == ours["id"])
    release = threading.Event()
    pagerduty.faults.answer_late_next(1, release=release, calls=("/incidents/",), method="PUT")
    try:
        click(service, render.ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
        wait_for(lambda: pagerduty.incidents[ours["id"]]["status"] == "acknowledged")
        time.sleep(1.1)  # the emulator's times are whole seconds: the resolve comes later
        pagerduty.act_in_app(ours["id"], status="resolved", user_id="PBOB")
        wait_for(lambda: incident_row(service, incident_id).status == "resolved")
    finally:
        release.set()
    wait_for(lambda: outbox_idle(service))
    row = incident_row(service, incident_id)
    assert (row.status, row.pagerduty_status) == ("resolved", "resolved")
