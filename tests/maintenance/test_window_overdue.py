"""A window past its end whose end job has not run (no leader, a dead loop, a job given
up): listed as overdue with its End button, and ending it by hand pages what it held.

The service runs no jobs unless a test says (tests/maintenance/conftest.py): the end
job is late for as long as a test wants.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.clock import ManualClock
from bot.maintenance import render
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import (
    T0,
    command,
    incident_message,
    only_incident,
    outbox_idle,
    responses_to,
    send_alarm,
)
from tests.maintenance.conftest import audit_lines, silence, windows_of
from tests.support import LiveService, wait_for

NAME = "prod-api-5xx"


def test_an_overdue_window_is_listed_and_ending_it_by_hand_pages_what_it_held(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start()
    silence(service, slack, f"silence {NAME} for 30m reason deploy")
    send_alarm(service, sns_signer, NAME, "ALARM", T0)
    held = wait_for(lambda: only_incident(service, NAME))
    wait_for(lambda: incident_message(slack, held))
    wait_for(lambda: outbox_idle(service))
    clock.advance(minutes=45)  # its end job never ran
    assert pagerduty.events_for(held.dedup_key) == []

    url = slack.response_url()
    command(service, "/incident", "silences", response_url=url)
    [listing] = wait_for(lambda: responses_to(slack, url))
    blocks = str(listing["blocks"])
    assert f"#1 alarms `{NAME}`" in blocks and "was due to end" in blocks
    assert blocks.count(render.END) == 1

    acked, reply = silence(service, slack, "silence end 1")
    assert acked == "Ending maintenance window #1…"
    assert reply is not None
    assert "closed (it was due to end" in reply, reply
    assert "1 alarm(s) it held still firing were paged" in reply, reply
    [trigger] = wait_for(lambda: pagerduty.events_for(held.dedup_key))
    assert trigger["event_action"] == "trigger"
    [ended] = windows_of(service)
    assert ended.ended_by == "U0ALICE" and ended.ended_at == clock.now()
    [line] = audit_lines(service, "maintenance.end")
    assert line.outcome == "ok" and line.detail["overdue"] is True

    # Closed now: it is over, and no longer listed.
    _, again = silence(service, slack, "silence end 1")
    assert again is not None and "already over" in again
    url = slack.response_url()
    command(service, "/incident", "silences", response_url=url)
    [empty] = wait_for(lambda: responses_to(slack, url))
    assert "No maintenance window" in empty["text"]


def test_an_overdue_window_is_not_ended_by_someone_without_the_right(
    start: Callable[..., LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start()
    silence(service, slack, f"silence {NAME} for 30m reason deploy")
    send_alarm(service, sns_signer, NAME, "ALARM", T0)
    held = wait_for(lambda: only_incident(service, NAME))
    wait_for(lambda: outbox_idle(service))
    clock.advance(minutes=45)  # its end job never ran

    # Bob is not in the route's channel: the silence right is the channel's members'.
    url = slack.response_url()
    command(service, "/incident", "silences", user_id="U0BOB", response_url=url)
    [listing] = wait_for(lambda: responses_to(slack, url))
    assert "was due to end" in str(listing["blocks"]) and render.END not in str(listing["blocks"])
    _, reply = silence(service, slack, "silence end 1", user_id="U0BOB")
    assert reply is not None and "You may not end" in reply, reply
    assert "members of" in reply, reply  # it names the right that is missing

    [window] = windows_of(service)
    assert window.ended_at is None and window.ended_by is None
    assert pagerduty.events_for(held.dedup_key) == []
    [line] = audit_lines(service, "maintenance.end")
    assert (line.actor, line.outcome) == ("U0BOB", "refused")
