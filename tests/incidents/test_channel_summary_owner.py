"""A start that finishes a dead start's channel takes only a summary opsbot's bot posted.

Anyone in the incident's channel can post a message with the summary's mark (the
incident's number is in the channel's name). The start that finishes the setup
looks for the summary the dead start may have posted: a look-alike is not taken
for it. The summary is posted and pinned, and the look-alike is left as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bot.clock import ManualClock
from bot.config import Config, parse_config
from bot.incidents import render
from bot.incidents.channels import CLAIM_S, SUMMARY_EVENT
from bot.incidents.models import Incident
from bot.settings import Settings
from bot.slack_metadata import marked
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import BOT_USER, SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, click, outbox_idle, page, responses_to
from tests.support import LiveService, wait_for

HALF_MADE = "C0HALFMADE"


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
    stamped_by, sns_signer.clock = sns_signer.clock, clock
    yield lambda config: make_service(settings, config, clock=clock, run_jobs=False)
    sns_signer.clock = stamped_by


def _left_half_made(service: LiveService, incident_id: int, clock: ManualClock) -> None:
    """The incident as a start left it that died after Slack made its channel."""
    with service.runtime.sessions() as db:
        incident = db.get(Incident, incident_id)
        assert incident is not None
        incident.slack_channel_id = HALF_MADE
        incident.slack_channel_name = "inc-1-prod-api-5xx"
        incident.channel_requested_at = clock.now()
        incident.channel_requested_by = "<@U0BOB>"
        db.commit()


def test_a_look_alike_summary_is_not_taken_for_the_dead_starts(
    start: Callable[[Config], LiveService],
    clock: ManualClock,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = start(parse_config(TEST_CONFIG))
    incident_id, _message = page(service, sns_signer, slack, pagerduty)
    wait_for(lambda: outbox_idle(service))
    slack.add_channel(HALF_MADE, "inc-1-prod-api-5xx")
    _left_half_made(service, incident_id, clock)
    fake = slack.add_message(channel=HALF_MADE, text="Log in: <https://evil.example|here>")
    fake.user = "U0MALLORY"
    fake.metadata = marked(SUMMARY_EVENT, {"incident": incident_id})

    clock.advance(seconds=CLAIM_S + 1)
    url = slack.response_url()
    click(service, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=url)
    wait_for(lambda: any(f"Started <#{HALF_MADE}>" in str(r.get("text")) for r in responses_to(
        slack, url
    )))  # fmt: skip
    wait_for(lambda: outbox_idle(service))

    [pinned] = slack.pins(HALF_MADE)
    summary = next(m for m in slack.channel_messages(HALF_MADE) if m.ts == pinned)
    assert summary.ts != fake.ts and summary.user == BOT_USER
    assert (summary.metadata or {}).get("event_type") == SUMMARY_EVENT
    assert fake.updates == 0 and fake.text == "Log in: <https://evil.example|here>"


def test_a_look_that_cannot_ask_slack_who_opsbot_is_finds_no_summary(
    start: Callable[[Config], LiveService],
    clock: ManualClock,
    slack: SlackEmulator,
) -> None:
    # The start then posts the summary without the check, as when history is unreadable.
    service = start(parse_config(TEST_CONFIG))
    slack.add_channel(HALF_MADE, "inc-1-prod-api-5xx")
    fake = slack.add_message(channel=HALF_MADE, text="not the summary")
    fake.metadata = marked(SUMMARY_EVENT, {"incident": 1})
    slack.faults.fail_next(5, status=500, calls=("auth.test",))  # Slack cannot say who opsbot is

    channels = service.runtime.incident_channels
    assert channels._posted_summary(HALF_MADE, 1) is None
