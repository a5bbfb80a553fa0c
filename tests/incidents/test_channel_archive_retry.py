"""Archiving a resolved incident's channel when Slack cannot answer at that moment.

Slack's own trouble (a 503, a rate limit) makes the archive job raise, so the
scheduler tries it again 30 s later and the channel is archived then; a refusal
that will not change (a missing scope) is logged and not tried again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.clock import ManualClock
from bot.config import Config
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.incidents.helpers import T0, command, incident_row
from tests.incidents.test_channels import channel_config, channel_of, declare
from tests.support import LiveService, wait_for

JOB = "incident:1:archive_channel"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def start(
    settings: Settings,
    make_service: Callable[..., LiveService],
    sns_signer: SnsSigner,
    clock: ManualClock,
) -> Iterator[Callable[[Config], LiveService]]:
    """A service on the test clock whose jobs run when the test says (`run_due`)."""
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield lambda config: make_service(settings, config, clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def resolved_with_a_channel(
    start: Callable[[Config], LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> tuple[LiveService, str]:
    service = start(channel_config(create_on_declare=True, archive_after_days=2))
    declare(service, slack, user_id="U0BOB")
    channel = wait_for(lambda: channel_of(service, 1))
    wait_for(lambda: pagerduty.incidents_for(incident_row(service, 1).dedup_key))
    command(service, "/incident", "resolve 1 rolled back", response_url=slack.response_url())
    wait_for(lambda: incident_row(service, 1).channel_archive_at is not None)
    # The archive job is stored after the resolve's commit: wait for it, not the column.
    wait_for(lambda: JOB in dict(service.runtime.scheduler.pending()))
    return service, channel


@pytest.mark.parametrize("status", [503, 429])
def test_slack_trouble_at_archive_time_is_tried_again(
    start: Callable[[Config], LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    clock: ManualClock,
    status: int,
) -> None:
    service, channel = resolved_with_a_channel(start, slack, pagerduty)
    clock.advance(days=2, minutes=1)
    slack.faults.fail_next(1, status=status, calls=("conversations.archive",))
    assert service.runtime.scheduler.run_due(clock.now()) == [JOB]
    assert not slack.channels[channel].get("is_archived")
    assert incident_row(service, 1).channel_archived_at is None

    clock.advance(seconds=31)  # the scheduler's first retry
    assert service.runtime.scheduler.run_due(clock.now()) == [JOB]
    assert slack.channels[channel]["is_archived"]
    row = incident_row(service, 1)
    assert row.channel_archive_at is None
    assert row.channel_archived_at is not None


def test_a_refusal_that_will_not_change_is_not_tried_again(
    start: Callable[[Config], LiveService],
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    clock: ManualClock,
) -> None:
    service, channel = resolved_with_a_channel(start, slack, pagerduty)
    clock.advance(days=2, minutes=1)
    slack.revoke_scope("channels:manage")
    assert service.runtime.scheduler.run_due(clock.now()) == [JOB]
    clock.advance(hours=1)
    assert service.runtime.scheduler.run_due(clock.now()) == []
    assert not slack.channels[channel].get("is_archived")
    assert [c.error for c in slack.calls if c.method == "conversations.archive"] == [
        "missing_scope"
    ]
