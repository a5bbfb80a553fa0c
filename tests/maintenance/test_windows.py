"""Maintenance windows through Bolt, the Slack and PagerDuty emulators, on a test clock.

A window holds pages (the alarm is still posted, threaded and on the timeline),
ends early or on time and then pages what still fires, and is refused (audited,
nothing stored) to people without the silence right and for bad input.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.clock import ManualClock
from bot.incidents.render import ACKNOWLEDGE
from bot.maintenance import render
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import (
    T0,
    click,
    command,
    events_of,
    incident_message,
    message_text,
    only_incident,
    outbox_idle,
    page,
    responses_to,
    send_alarm,
)
from tests.maintenance.conftest import audit_lines, config_with, silence, windows_of
from tests.support import LiveService, wait_for


def held_alarm(
    service: LiveService, signer: SnsSigner, slack: SlackEmulator, name: str = "prod-api-5xx"
) -> int:
    """An ALARM under a window: posted and threaded; returns its incident's number."""
    send_alarm(service, signer, name, "ALARM", T0)
    incident = wait_for(lambda: only_incident(service, name))
    wait_for(lambda: incident_message(slack, incident))
    wait_for(lambda: outbox_idle(service))
    return int(incident.id)


def test_a_window_holds_the_page_but_the_alarm_is_posted_threaded_and_recorded(
    start: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    acked, reply = silence(service, slack, "silence prod-api-* for 2h reason database upgrade")
    assert acked == "Making the maintenance window…"
    assert reply is not None and "Maintenance window #1" in reply
    [window] = windows_of(service)
    assert (window.kind, window.pattern, window.created_by) == ("alarms", "prod-api-*", "U0ALICE")
    assert window.ends_at - window.starts_at == timedelta(hours=2)

    incident_id = held_alarm(service, sns_signer, slack)
    incident = only_incident(service, "prod-api-5xx")
    assert incident is not None and not incident.paged
    assert pagerduty.events_for(incident.dedup_key) == []
    message = incident_message(slack, incident)
    assert message is not None
    assert "In maintenance window #1 (database upgrade, by <@U0ALICE>" in message_text(message)
    assert "recorded, not paged" in message_text(message)
    assert "maintenance" in [e.kind for e in events_of(service, incident_id)]
    assert service.runtime.metrics.maintenance_held._value.get() == 1
    [made] = audit_lines(service, "maintenance.create")
    assert (made.actor, made.outcome, made.target) == ("U0ALICE", "ok", "maintenance:1")

    # Another route's alarm is not held.
    send_alarm(service, sns_signer, "prod-db-cpu", "ALARM", T0)
    other = wait_for(lambda: only_incident(service, "prod-db-cpu"))
    wait_for(lambda: pagerduty.events_for(other.dedup_key))


def test_ending_a_window_early_pages_what_still_fires_and_then_alarms_page(
    start: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    silence(service, slack, "silence prod for 1h reason failover drill")
    [window] = windows_of(service)
    assert window.kind == "route"
    held_alarm(service, sns_signer, slack)
    held = only_incident(service, "prod-api-5xx")
    assert held is not None and pagerduty.events_for(held.dedup_key) == []

    acked, reply = silence(service, slack, "silence end 1")
    assert acked == "Ending maintenance window #1…"
    assert reply is not None and "ended" in reply and "1 alarm(s) still firing were paged" in reply
    [trigger] = wait_for(lambda: pagerduty.events_for(held.dedup_key))
    assert trigger["event_action"] == "trigger"
    message = incident_message(slack, held)
    assert message is not None
    wait_for(
        lambda: any(
            "is over and this alarm still fires" in m.text
            for m in slack.thread("C0PRODALERTS", message.ts)
        )
    )
    [ended] = windows_of(service)
    assert ended.ended_by == "U0ALICE" and ended.ended_at is not None
    assert [r.outcome for r in audit_lines(service, "maintenance.end")] == ["ok"]

    # The next alarm pages at once.
    page(service, sns_signer, slack, pagerduty, name="prod-api-latency")


def test_an_alarm_acknowledged_in_slack_during_the_window_is_not_paged_at_its_end(
    start: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    silence(service, slack, "silence prod for 1h reason failover drill")
    incident_id = held_alarm(service, sns_signer, slack)
    click(service, ACKNOWLEDGE, str(incident_id), response_url=slack.response_url())
    wait_for(lambda: only_incident(service, "prod-api-5xx").acknowledged_at is not None)
    wait_for(lambda: outbox_idle(service))
    held = only_incident(service, "prod-api-5xx")

    _, reply = silence(service, slack, "silence end 1")
    assert reply is not None and "ended" in reply and "were paged" not in reply
    message = incident_message(slack, held)
    assert message is not None
    said = "is over and this alarm still fires: not paged, <@U0ALICE> acknowledged it."
    wait_for(lambda: any(said in m.text for m in slack.thread("C0PRODALERTS", message.ts)))
    wait_for(lambda: outbox_idle(service))
    assert pagerduty.events_for(held.dedup_key) == []
    assert not only_incident(service, "prod-api-5xx").paged


def test_the_window_ends_on_time_and_pages_what_still_fires_once(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    silence(service, slack, "silence prod-api-5xx for 30m reason deploy")
    held_alarm(service, sns_signer, slack)
    held = only_incident(service, "prod-api-5xx")
    assert held is not None
    assert service.runtime.scheduler.pending() == [
        ("maintenance:1:end", T0 + timedelta(minutes=30))
    ]
    clock.advance(minutes=29)
    assert service.runtime.scheduler.run_due(clock.now()) == []
    clock.advance(minutes=1)
    assert service.runtime.scheduler.run_due(clock.now()) == ["maintenance:1:end"]
    [trigger] = wait_for(lambda: pagerduty.events_for(held.dedup_key))
    assert trigger["event_action"] == "trigger"
    assert "maintenance_end" in [e.kind for e in events_of(service, held.id)]
    # Running the end again (a restart re-scheduled it) pages nobody twice.
    service.runtime.jobs["maintenance.window_end"](window_id=1)
    wait_for(lambda: outbox_idle(service))
    assert len(pagerduty.events_for(held.dedup_key)) == 1


def test_a_planned_window_not_yet_begun_lets_alarms_page(
    start: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start()
    _, reply = silence(service, slack, "silence prod in 30m for 1h reason upgrade tonight")
    assert reply is not None and "from <!date^" in reply
    [window] = windows_of(service)
    assert window.starts_at == T0 + timedelta(minutes=30)
    page(service, sns_signer, slack, pagerduty)  # pages: the window has not begun


def test_a_planned_window_holds_once_begun_and_its_end_survives_a_restart(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    first = start()
    silence(first, slack, "silence prod-api-* in 30m for 1h reason upgrade")
    first.stop()
    second = start()  # the end job is scheduled again at start
    assert second.runtime.scheduler.pending() == [("maintenance:1:end", T0 + timedelta(minutes=90))]
    clock.advance(minutes=30)
    send_alarm(second, sns_signer, "prod-api-5xx", "ALARM", clock.now())
    held = wait_for(lambda: only_incident(second, "prod-api-5xx"))
    wait_for(lambda: incident_message(slack, held))
    wait_for(lambda: outbox_idle(second))
    assert pagerduty.events_for(held.dedup_key) == []


def test_the_listing_shows_windows_with_end_buttons_only_for_those_who_may(
    start: Callable[..., LiveService],
    slack: SlackEmulator,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start()
    silence(service, slack, "silence prod for 1h reason now")
    silence(service, slack, "silence prod at 11:00 for 1h reason <@U0BOB> later & <!here>")
    url = slack.response_url()
    command(service, "/incident", "silences", response_url=url)
    [alice] = wait_for(lambda: responses_to(slack, url))
    text = str(alice["blocks"])
    assert "#1 route `prod`" in text and "#2 route `prod`" in text
    assert "&lt;@U0BOB&gt; later &amp; &lt;!here&gt;" in text  # a reason is text, never markup
    assert text.count(render.END) == 2

    url = slack.response_url()
    command(service, "/incident", "silences", user_id="U0BOB", response_url=url)
    [bob] = wait_for(lambda: responses_to(slack, url))
    assert "#1 route" in str(bob["blocks"]) and render.END not in str(bob["blocks"])

    # Bob clicks an End button anyway (a stale view, a forged payload): refused, audited.
    url = slack.response_url()
    click(service, render.END, "1", user_id="U0BOB", response_url=url)
    [refusal] = wait_for(lambda: responses_to(slack, url))
    assert "`silence` on route `prod`" in refusal["text"]
    assert all(w.ended_at is None for w in windows_of(service))
    [refused] = audit_lines(service, "maintenance.end")
    assert (refused.actor, refused.outcome) == ("U0BOB", "refused")

    # Alice's click ends it.
    url = slack.response_url()
    click(service, render.END, "1", response_url=url)
    [ended] = wait_for(lambda: responses_to(slack, url))
    assert "Maintenance window #1 ended" in ended["text"]
    assert windows_of(service)[0].ended_by == "U0ALICE"


def test_without_the_silence_right_nothing_is_stored_but_an_audit_line(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start()
    _, reply = silence(service, slack, "silence prod for 1h reason mine", user_id="U0BOB")
    assert reply is not None
    assert "You may not hold pages of route `prod`" in reply
    assert "`silence` on route `prod`" in reply
    assert windows_of(service) == []
    [refused] = audit_lines(service, "maintenance.create")
    assert (refused.actor, refused.outcome, refused.target) == ("U0BOB", "refused", "route:prod")

    # A glob reaches every paging route: Bob holds none of them either.
    _, reply = silence(service, slack, "silence *-5xx for 1h reason mine", user_id="U0BOB")
    assert reply is not None and "You may not" in reply
    assert windows_of(service) == []


def test_a_window_over_a_route_name_needs_the_right_on_every_route_of_that_name(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    # Two routes named `prod`, in two channels: a window over `prod` holds both.
    slack.add_channel("C0PRODDB", "prod-db")
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE", "U0BOB"])
    slack.set_channel_members("C0PRODDB", ["U0ALICE"])
    prod, default = TEST_CONFIG["alarm_routes"]
    db_route = {**prod, "match": {"alarm_name": "prod-db-*"}, "channel": "C0PRODDB"}
    service = start(config_with(alarm_routes=[prod, db_route, default]))
    _, reply = silence(service, slack, "silence prod for 1h reason mine", user_id="U0BOB")
    assert reply is not None and "You may not hold pages of route `prod`" in reply
    assert windows_of(service) == []
    _, reply = silence(service, slack, "silence prod for 1h reason mine")
    assert reply is not None and "Maintenance window #1" in reply


def test_a_window_over_every_alarm_needs_an_admin(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    service = start(config_with(rights={"admins": {"users": ["U0BOB"]}}))
    _, reply = silence(service, slack, "silence * for 1h reason everything")
    assert reply is not None and "needs the `admin` right" in reply
    assert windows_of(service) == []
    # A glob naming no character matches every alarm too, whatever its brackets say.
    _, reply = silence(service, slack, "silence [!_]* for 1h reason everything")
    assert reply is not None and "needs the `admin` right" in reply
    assert windows_of(service) == []
    _, reply = silence(service, slack, "silence * for 1h reason everything", user_id="U0BOB")
    assert reply is not None and "Maintenance window #1" in reply


def test_bad_input_is_answered_and_stores_nothing(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    service = start(
        config_with(
            alarm_routes=[
                {
                    **TEST_CONFIG["alarm_routes"][0],
                    "rights": {"silence": {"channel_members": True, "max_min": 120}},
                },
                TEST_CONFIG["alarm_routes"][1],
            ]
        )
    )
    cases = {
        "silence prod for soon reason x": "is not a duration",
        "silence prod for 0m reason x": "at least a minute",
        "silence prod at 09:00 for 1h reason x": "is in the past",
        "silence prod at yesterday for 1h reason x": "is not a time",
        "silence prod at 0001-01-01T00:00+05:00 for 1h reason x": "is not a time",  # no UTC date
        "silence prod in 40d for 1h reason x": "30 days ahead at most",
        "silence prod for 1h": "reason <text>",
        "silence prod reason x": "for 2h",
        "silence " + "a" * 201 + " for 1h reason x": "too long",
        "silence <!here> for 1h reason x": "is not a route name or an alarm-name glob",
        "silence end x": "is not a window number",
        "silence end": "takes the window's number",
    }
    for text, expected in cases.items():
        acked, reply = silence(service, slack, text)
        assert expected in acked, (text, acked)
        assert "Usage:" in acked and reply is None
    _, reply = silence(service, slack, "silence prod for 3h reason too long")
    assert reply is not None and "120 minutes at most, not 180" in reply
    _, reply = silence(service, slack, "silence end 9")
    assert reply is not None and "There is no maintenance window #9" in reply
    assert windows_of(service) == []
