"""App Home through Bolt and the emulators: published on open, refreshed on change, per viewer.

The view shows each person only the incidents of channels they can read, and
buttons only for what they may do; refreshes follow changes, at most once per
person per debounce interval.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot.audit.models import AuditRecord
from bot.clock import ManualClock
from bot.config import parse_config
from bot.home import render as home_render
from bot.incidents import render as incident_render
from bot.maintenance import render as maintenance_render
from bot.maintenance.models import MaintenanceWindow
from bot.modals import service as modal_service
from bot.settings import Settings
from sandbox import slack_view_requests
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.slack_home import app_home_opened, home_block_action
from sandbox.slack_requests import FORM
from sandbox.slack_views import OpenView
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_SIGNING_SECRET, TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    audit_of,
    command,
    incident_row,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.support import LiveService, slack_headers, wait_for

HOME_CONFIG: dict[str, Any] = {**TEST_CONFIG, "home": {"refresh_interval_s": 0, "debounce_s": 30}}
_event_ids = itertools.count(1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def service(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[LiveService]:
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield make_service(settings, parse_config(HOME_CONFIG), clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def publishes(slack: SlackEmulator, user_id: str) -> int:
    return sum(1 for c in slack.calls_to("views.publish") if c.args.get("user_id") == user_id)


def open_home(service: LiveService, slack: SlackEmulator, user_id: str) -> dict[str, Any]:
    """Send a signed `app_home_opened` and wait for the view it publishes."""
    before = publishes(slack, user_id)
    body = app_home_opened(user_id, event_id=f"EvHOME{next(_event_ids)}")
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": "application/json"}
    assert service.post("/slack/events", content=body, headers=headers).status_code == 200
    wait_for(lambda: publishes(slack, user_id) > before)
    view = slack.home_of(user_id)
    assert view is not None
    return view


def headers_of(view: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in view["blocks"] if b["type"] == "header"]


def test_home_shows_incidents_oncall_today_windows_and_the_pagerduty_link(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    command(
        service, "/incident", "silence prod-db-* at 11:00 for 1h reason vacuum", response_url=url
    )
    wait_for(lambda: responses_to(slack, url))
    url = slack.response_url()
    command(service, "/opsbot", "link-pagerduty alice@example.com", response_url=url)
    wait_for(lambda: responses_to(slack, url))

    view = open_home(service, slack, "U0ALICE")
    assert view["type"] == "home"
    assert headers_of(view) == [
        "opsbot",
        "Open incidents (1)",
        "On call",
        "Today",
        "Maintenance windows",
        "You in PagerDuty",
    ]
    text = str(view["blocks"])
    assert f"*#{incident_id}* prod-api-5xx" in text
    assert f"https://slack.com/archives/C0PRODALERTS/p{message.ts.replace('.', '')}" in text
    buttons = [
        (e["action_id"], e["value"])
        for b in view["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert buttons == [
        (incident_render.ACKNOWLEDGE, str(incident_id)),
        (incident_render.RESOLVE, str(incident_id)),
        (home_render.PLAN_WINDOW, "silence"),  # the form checks the right when submitted
    ]
    assert "Production" in text and "Alice Example" in text  # on call now, from PagerDuty
    assert "#1 alarms `prod-db-*` (vacuum, by <@U0ALICE>) from <!date^" in text
    assert maintenance_render.END in text
    assert "alice@example.com" in text and "`PALICE`" in text
    assert "linked by hand" in text  # her own /opsbot link-pagerduty, not an admin's


def test_a_viewer_sees_only_the_incidents_and_buttons_their_rights_allow(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.channels["C0PRODALERTS"]["is_private"] = True
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    page(service, sns_signer, slack, pagerduty)
    url = slack.response_url()
    command(service, "/incident", "silence prod for 1h reason drill", response_url=url)
    wait_for(lambda: responses_to(slack, url))

    view = open_home(service, slack, "U0BOB")
    text = str(view["blocks"])
    assert "Open incidents (0)" in text and "prod-api-5xx" not in text
    assert incident_render.ACKNOWLEDGE not in text
    assert "#1 route `prod`" in text and maintenance_render.END not in text

    # Alice, in the channel and holding the rights, sees the incident and the buttons.
    alice = str(open_home(service, slack, "U0ALICE")["blocks"])
    assert "prod-api-5xx" in alice and maintenance_render.END in alice


def test_home_is_refreshed_after_an_incident_opens_and_refreshes_are_debounced(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
) -> None:
    refresher = service.runtime.home
    assert refresher is not None
    open_home(service, slack, "U0ALICE")
    assert "Open incidents (0)" in str(slack.home_of("U0ALICE"))
    assert refresher.tick() == []  # the first look: she opened it within the debounce

    send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0)
    wait_for(lambda: outbox_idle(service))
    assert refresher.tick() == []  # opened at T0: within the debounce interval
    clock.advance(seconds=31)
    assert refresher.tick() == ["U0ALICE"]
    assert "prod-api-5xx" in str(slack.home_of("U0ALICE"))
    assert publishes(slack, "U0ALICE") == 2

    # Two more changes inside the interval: one refresh once it has passed.
    send_alarm(service, sns_signer, "prod-db-cpu", "ALARM", T0)
    wait_for(lambda: outbox_idle(service))
    clock.advance(seconds=5)
    assert refresher.tick() == []
    send_alarm(service, sns_signer, "prod-db-disk", "ALARM", T0)
    wait_for(lambda: outbox_idle(service))
    clock.advance(seconds=5)
    assert refresher.tick() == []
    assert publishes(slack, "U0ALICE") == 2
    clock.advance(seconds=30)
    assert refresher.tick() == ["U0ALICE"]
    assert refresher.tick() == []  # nothing changed since
    text = str(slack.home_of("U0ALICE"))
    assert "prod-db-cpu" in text and "prod-db-disk" in text
    assert publishes(slack, "U0ALICE") == 3

    # Someone who opened Home long ago is not refreshed.
    clock.advance(hours=13)
    send_alarm(service, sns_signer, "prod-api-latency", "ALARM", T0 + timedelta(hours=13))
    wait_for(lambda: outbox_idle(service))
    assert refresher.tick() == []


def test_refreshes_are_capped_per_minute(
    settings: Settings,
    make_service: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
) -> None:
    config = parse_config(
        {
            **HOME_CONFIG,
            "home": {"refresh_interval_s": 0, "debounce_s": 0, "max_refreshes_per_min": 2},
        }
    )
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    try:
        service = make_service(settings, config, clock=clock, run_jobs=False)
        refresher = service.runtime.home
        assert refresher is not None
        for user in ("U0CAROL", "U0DAN", "U0ERIN"):
            slack.add_user(user, user.lower())
        for user in ("U0ALICE", "U0BOB", "U0CAROL", "U0DAN", "U0ERIN"):
            open_home(service, slack, user)
        sent = len(slack.calls_to("views.publish"))
        # The first look owes everyone a refresh, within the cap; no view changed: none is sent.
        for _ in range(3):
            assert refresher.tick() == []
            clock.advance(seconds=61)
        assert len(slack.calls_to("views.publish")) == sent
        send_alarm(service, sns_signer, "prod-api-5xx", "ALARM", T0)
        wait_for(lambda: outbox_idle(service))
        assert len(refresher.tick()) == 2
        assert refresher.tick() == []  # the minute's budget is spent
        clock.advance(seconds=61)
        assert len(refresher.tick()) == 2
        clock.advance(seconds=61)
        assert len(refresher.tick()) == 1
    finally:
        sns_signer.clock = stamped_by


def test_an_event_for_another_tab_publishes_nothing(
    service: LiveService, slack: SlackEmulator
) -> None:
    body = app_home_opened("U0ALICE", event_id="EvMESSAGES", tab="messages")
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": "application/json"}
    assert service.post("/slack/events", content=body, headers=headers).status_code == 200
    open_home(service, slack, "U0BOB")  # a later event is handled: the first was let go
    assert slack.home_of("U0ALICE") is None
    forged = service.post(
        "/slack/events", content=body, headers={"Content-Type": "application/json"}
    )
    assert forged.status_code == 401


def open_plan_form(service: LiveService, slack: SlackEmulator, user_id: str) -> OpenView:
    """Click Home's "Plan a maintenance window…" as `user_id`; the form it opened."""
    view = open_home(service, slack, user_id)
    [plan] = [
        element
        for block in view["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == home_render.PLAN_WINDOW
    ]
    body = home_block_action(
        plan["action_id"],
        plan["value"],
        user_id=user_id,
        view=view,
        trigger_id=slack.trigger_id(user=user_id),
    )
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": FORM}
    assert service.post("/slack/events", content=body, headers=headers).status_code == 200
    [opened] = wait_for(lambda: slack.open_views(user_id))
    return opened


def test_the_plan_button_opens_the_maintenance_window_form(
    service: LiveService, slack: SlackEmulator
) -> None:
    opened = open_plan_form(service, slack, "U0ALICE")
    assert opened.view["callback_id"] == modal_service.SILENCE


def click_on_home(
    service: LiveService, view: dict[str, Any], action_id: str, value: str, *, user_id: str
) -> None:
    body = home_block_action(action_id, value, user_id=user_id, view=view)
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": FORM}
    assert service.post("/slack/events", content=body, headers=headers).status_code == 200


def test_a_refused_click_on_home_is_answered_on_home_and_changes_nothing(
    service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    incident_id, message = page(service, sns_signer, slack, pagerduty)
    updates = message.updates
    view = open_home(service, slack, "U0BOB")
    assert ":no_entry:" not in str(view["blocks"])

    # Bob's view has no button for it; a click forged (or from a view older than his
    # rights) is refused where it acts, and Home, which has no response_url, says why.
    before = publishes(slack, "U0BOB")
    click_on_home(service, view, incident_render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB")
    wait_for(lambda: publishes(slack, "U0BOB") > before)
    wait_for(lambda: outbox_idle(service))
    home = slack.home_of("U0BOB")
    assert home is not None
    [notice] = [b["text"]["text"] for b in home["blocks"] if ":no_entry:" in str(b)]
    assert "Not done" in notice and "`incident.acknowledge`" in notice
    assert "needs the `respond` on route `prod` right" in notice

    assert pd_calls(pagerduty, "PUT") == []
    assert message.updates == updates
    [record] = audit_of(service, incident_id)
    assert (record.actor, record.outcome, record.detail["via"]) == ("U0BOB", "refused", "home")
    assert record.detail["reason"] in notice

    # Alice may: her click acknowledges, and her Home shows no refusal.
    view = open_home(service, slack, "U0ALICE")
    click_on_home(service, view, incident_render.ACKNOWLEDGE, str(incident_id), user_id="U0ALICE")
    wait_for(lambda: incident_row(service, incident_id).acknowledged_at is not None)
    wait_for(lambda: outbox_idle(service))
    assert [r.outcome for r in audit_of(service, incident_id)] == ["refused", "ok"]
    assert ":no_entry:" not in str(slack.home_of("U0ALICE"))


def test_a_click_on_home_that_pagerduty_refuses_is_shown_on_home(
    service: LiveService,
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    refresher = service.runtime.home
    assert refresher is not None
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    view = open_home(service, slack, "U0ALICE")
    assert refresher.tick() == []  # the first look: she opened it within the debounce
    pagerduty.faults.fail_next(1, status=403, calls=("/incidents/",))

    # Allowed, so acknowledged in opsbot at once; PagerDuty then says no, which a
    # click on Home (no response_url) would otherwise hear only in the incident's thread.
    click_on_home(service, view, incident_render.ACKNOWLEDGE, str(incident_id), user_id="U0ALICE")
    wait_for(lambda: "failed" in [r.outcome for r in audit_of(service, incident_id)])
    wait_for(lambda: outbox_idle(service))
    clock.advance(seconds=31)
    assert refresher.tick() == ["U0ALICE"]
    home = slack.home_of("U0ALICE")
    assert home is not None
    [notice] = [b["text"]["text"] for b in home["blocks"] if ":warning: Failed" in str(b)]
    assert "`incident.acknowledge`" in notice
    [failed] = [r for r in audit_of(service, incident_id) if r.outcome == "failed"]
    assert (failed.actor, failed.detail["via"]) == ("U0ALICE", "home")
    # Another person's Home does not show Alice's failure.
    assert ":warning: Failed" not in str(open_home(service, slack, "U0BOB")["blocks"])


def test_a_window_form_opened_from_home_and_refused_late_is_answered_on_home(
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
) -> None:
    # Past its wait the form closes before its outcome is known; from Home there is
    # no response_url, so Home says why (Bob is not in the route's channel).
    hurried = settings.model_copy(update={"slack_form_wait_s": 0.001})
    service = make_service(hurried, parse_config(HOME_CONFIG), run_jobs=False)
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    opened = open_plan_form(service, slack, "U0BOB")
    before = publishes(slack, "U0BOB")
    values = slack_view_requests.state_values(
        opened.view,
        {
            modal_service.SILENCE_ROUTE: "prod",
            modal_service.LASTS: "1h",
            modal_service.REASON: "db upgrade",
        },
    )
    body = slack_view_requests.view_submission(
        opened.as_api("T0000", "A0OPSBOT"), user_id="U0BOB", values=values
    )
    headers = {**slack_headers(SLACK_SIGNING_SECRET, body), "Content-Type": FORM}
    answer = service.post("/slack/events", content=body, headers=headers)
    assert answer.status_code == 200 and "errors" not in answer.text  # the form closed

    wait_for(lambda: publishes(slack, "U0BOB") > before)
    home = slack.home_of("U0BOB")
    assert home is not None
    [notice] = [b["text"]["text"] for b in home["blocks"] if ":no_entry:" in str(b)]
    assert "Not done" in notice and "needs the `silence` on route `prod` right" in notice
    with service.runtime.sessions() as db_session:
        assert db_session.scalar(sa.select(sa.func.count()).select_from(MaintenanceWindow)) == 0
    [record] = [r for r in all_audit(service) if r.action.startswith("maintenance")]
    assert (record.actor, record.outcome, record.detail["via"]) == ("U0BOB", "refused", "home")


def all_audit(service: LiveService) -> list[AuditRecord]:
    with service.runtime.sessions() as db_session:
        return list(db_session.scalars(sa.select(AuditRecord).order_by(AuditRecord.id)))
