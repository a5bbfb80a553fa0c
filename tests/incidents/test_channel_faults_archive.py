"""An incident reopened after (or while) its channel was archived gets a channel again.

A bot token cannot unarchive a channel, so an open incident whose channel is
archived shows Start a channel again, and a start makes a new channel beside the
archived one (which keeps its history). A reopen that lands while Slack is
archiving the channel is noticed under the incident's lock and counted.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import SecretStr

from bot.clock import ManualClock
from bot.incidents import render
from bot.incidents.channels import SUMMARY_EVENT
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from tests.incidents.helpers import (
    T0,
    click,
    command,
    incident_message,
    incident_row,
    outbox_idle,
    responses_to,
)
from tests.incidents.test_channels import channel_config, channel_of, declare
from tests.incidents.test_webhook_other_service import BOB, post_webhook
from tests.support import LiveService, metric, wait_for

JOB = "incident:1:archive_channel"
SECRET = "whsec-channel-faults"
CHANNELS = "opsbot_incident_channels_total"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def resolved(
    settings: Any,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    clock: ManualClock,
) -> tuple[LiveService, str]:
    """Incident 1, its channel started, resolved; its archive due (not yet run)."""
    secrets = {"pagerduty_webhook_secrets": [SecretStr(SECRET)]}
    service = make_service(
        settings.model_copy(update=secrets),
        channel_config(create_on_declare=True, archive_after_days=1),
        clock=clock,
        run_jobs=False,
    )
    declare(service, slack, user_id="U0BOB")
    channel = wait_for(lambda: channel_of(service, 1))
    wait_for(lambda: pagerduty.incidents_for(incident_row(service, 1).dedup_key))
    command(service, "/incident", "resolve 1 rolled back", response_url=slack.response_url())
    wait_for(lambda: incident_row(service, 1).channel_archive_at is not None)
    wait_for(lambda: JOB in dict(service.runtime.scheduler.pending()))
    wait_for(lambda: outbox_idle(service))
    clock.advance(days=1, minutes=1)
    return service, channel


def reopen_in_pagerduty(service: LiveService, pagerduty: PagerDutyEmulator) -> None:
    [ours] = pagerduty.incidents_for(incident_row(service, 1).dedup_key)
    body = pagerduty.webhook_body("incident.reopened", {**ours, "status": "triggered"}, agent=BOB)
    assert post_webhook(service, body, secret=SECRET)[0] == 200
    wait_for(lambda: incident_row(service, 1).status == "open")


def offers_a_start(service: LiveService, slack: SlackEmulator) -> bool:
    message = incident_message(slack, incident_row(service, 1))
    return message is not None and render.START_CHANNEL in str(message.blocks)


def a_new_channel_starts(service: LiveService, slack: SlackEmulator, archived: str) -> None:
    url = slack.response_url()
    click(service, render.START_CHANNEL, "1", user_id="U0BOB", response_url=url)
    fresh = wait_for(lambda: (made := channel_of(service, 1)) != archived and made)
    wait_for(lambda: any("Started" in str(r.get("text")) for r in responses_to(slack, url)))
    wait_for(lambda: outbox_idle(service))

    assert slack.channels[fresh]["is_archived"] is False
    assert slack.channels[archived]["is_archived"] is True
    assert "U0BOB" in slack.channels[fresh]["members"]
    summaries = [
        m.ts
        for m in slack.channel_messages(fresh)
        if (m.metadata or {}).get("event_type") == SUMMARY_EVENT
    ]
    assert len(summaries) == 1 and slack.pins(fresh) == summaries
    row = incident_row(service, 1)
    assert row.has_live_channel and row.channel_archived_at is None
    assert not offers_a_start(service, slack)


def test_a_reopen_after_the_archive_offers_and_starts_a_new_channel(
    resolved: tuple[LiveService, str], slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service, channel = resolved
    assert service.runtime.scheduler.run_due(service.runtime.clock.now()) == [JOB]
    assert slack.channels[channel]["is_archived"]
    assert not offers_a_start(service, slack)  # resolved: no buttons to act

    reopen_in_pagerduty(service, pagerduty)
    wait_for(lambda: offers_a_start(service, slack))
    a_new_channel_starts(service, slack, channel)


def test_a_reopen_while_slack_archives_is_noticed_under_the_lock(
    resolved: tuple[LiveService, str], slack: SlackEmulator, pagerduty: PagerDutyEmulator
) -> None:
    service, channel = resolved
    release = threading.Event()
    slack.faults.answer_late_next(1, release=release, calls=("conversations.archive",))
    ran: list[list[str]] = []
    job = threading.Thread(
        target=lambda: ran.append(service.runtime.scheduler.run_due(service.runtime.clock.now()))
    )
    job.start()
    try:
        wait_for(lambda: slack.channels[channel].get("is_archived"))
        reopen_in_pagerduty(service, pagerduty)
    finally:
        release.set()
        job.join(timeout=30)
    assert ran == [[JOB]]

    row = incident_row(service, 1)
    assert row.status == "open" and row.channel_archive_at is None
    assert row.channel_archived_at is not None  # as it is in Slack
    assert metric(service, CHANNELS, outcome="archive_raced") == 1
    assert metric(service, CHANNELS, outcome="archived") == 0
    wait_for(lambda: offers_a_start(service, slack))
    a_new_channel_starts(service, slack, channel)
