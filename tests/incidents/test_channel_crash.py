"""A channel start cut short by SIGKILL after Slack made the channel, finished by the next start.

The first `opsbot serve` is killed while Slack is slow to answer its invites:
the channel exists in Slack, the setup is not recorded. A start within the
claim's time is told when to try again; the one after finishes the setup in
the channel already made (no second `conversations.create`, no `-2` beside an
orphan). Killed later, while Slack is slow to pin the summary it has posted,
the next start pins that summary rather than posting a second.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from bot.clock import ManualClock
from bot.config import parse_config
from bot.db.engine import make_engine
from bot.incidents import render
from bot.incidents.channels import CLAIM_S, SUMMARY_EVENT
from bot.incidents.models import Incident
from bot.settings import Settings
from sandbox.alarms import alarm_message
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner, body
from tests.conftest import SLACK_SIGNING_SECRET, TEST_CONFIG, TOPIC_ARN
from tests.incidents.helpers import (
    click,
    incident_message,
    message_text,
    outbox_idle,
    responses_to,
)
from tests.served_process import Process, environment, processes  # noqa: F401  # fixtures
from tests.support import LiveService, block_action_body, slack_headers, wait_for

ALARM_AT = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


@dataclass
class Paged:
    """A served `opsbot serve` (the first instance) and the incident its alarm opened."""

    process: Process
    base: str
    engine: Engine

    def incident(self) -> Incident | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(Incident)).first()
        return Incident(**row._mapping) if row is not None else None

    def incident_id(self) -> int:
        return int(wait_for(lambda: (found := self.incident()) and found.id))

    def made_channel(self) -> str:
        """The channel Slack made, once the incident holds it."""
        return str(
            wait_for(
                lambda: (found := self.incident()) and found.slack_channel_id,
                timeout_s=20,
                interval_s=0.02,
            )
        )


@pytest.fixture
def paged(
    environment: dict[str, str],  # noqa: F811
    processes: list[Process],  # noqa: F811
    tmp_path: Path,
    database_url: str,
    sns_signer: SnsSigner,
    pagerduty: PagerDutyEmulator,
) -> Iterator[Paged]:
    first = Process(environment, tmp_path / "opsbot.log")
    processes.append(first)
    base = f"http://127.0.0.1:{first.port}"
    envelope = sns_signer.notification(
        alarm_message(name="prod-api-5xx", state="ALARM", at=ALARM_AT), topic_arn=TOPIC_ARN
    )
    answer = httpx.post(
        f"{base}/sns",
        content=body(envelope),
        headers={"x-amz-sns-topic-arn": TOPIC_ARN},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    engine = make_engine(database_url)
    yield Paged(first, base, engine)
    engine.dispose()


def start_a_channel(base: str, incident_id: int, slack: SlackEmulator) -> None:
    """Click Start a channel on the served process at `base`."""
    payload = block_action_body(
        render.START_CHANNEL, str(incident_id), response_url=slack.response_url()
    )
    signed = slack_headers(SLACK_SIGNING_SECRET, payload)
    answer = httpx.post(f"{base}/slack/events", content=payload, headers=signed, timeout=10)
    assert answer.status_code == 200


def summaries(slack: SlackEmulator, channel: str) -> list[str]:
    """The timestamps of the channel's messages marked as an incident's summary."""
    return [
        m.ts
        for m in slack.channel_messages(channel)
        if (m.metadata or {}).get("event_type") == SUMMARY_EVENT
    ]


def test_a_start_killed_after_slack_made_the_channel_is_finished_there(
    paged: Paged,
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
) -> None:
    first, base, incident = paged.process, paged.base, paged.incident
    incident_id = paged.incident_id()
    # Slack answers each invite slowly (within opsbot's request timeout): the kill
    # comes after the channel is made and held on the incident, before its setup ends.
    slack.faults.hang_next(20, seconds=1.5, calls=("conversations.invite",))
    start_a_channel(base, incident_id, slack)
    made = paged.made_channel()
    first.kill()
    slack.faults.clear()
    assert len(slack.calls_to("conversations.create")) == 1
    half_made = incident()
    assert half_made is not None and half_made.channel_requested_at is not None
    assert not half_made.has_channel

    # The next instance, while the dead start's claim still holds: told when to try again.
    clock = ManualClock(datetime.now(UTC))
    second = make_service(settings, parse_config(TEST_CONFIG), clock=clock, run_jobs=False)
    early = slack.response_url()
    click(second, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=early)
    wait_for(lambda: responses_to(slack, early))
    told = " ".join(str(r.get("text")) for r in responses_to(slack, early))
    assert "is starting a channel" in told and "start it again" in told
    assert len(slack.calls_to("conversations.create")) == 1

    # Once the claim is older than CLAIM_S, a start finishes the setup in that channel.
    clock.advance(seconds=CLAIM_S + 1)
    later = slack.response_url()
    click(second, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=later)
    wait_for(lambda: responses_to(slack, later))
    wait_for(lambda: outbox_idle(second))
    said = " ".join(str(r.get("text")) for r in responses_to(slack, later))
    assert f"Started <#{made}>" in said
    assert len(slack.calls_to("conversations.create")) == 1
    finished = incident()
    assert finished is not None and finished.has_channel and finished.slack_channel_id == made
    assert [c for c in slack.calls_to("pins.add") if c.args.get("channel") == made]
    assert slack.channel_messages(made)

    # The incident's message now points at the channel and no longer offers to start one.
    def shown() -> str:
        message = incident_message(slack, finished)
        return message_text(message) if message is not None else ""

    wait_for(lambda: f"channel <#{made}>" in shown())
    assert "Start a channel" not in shown()
    registry = second.runtime.metrics.registry
    resumed = {"outcome": "resumed"}
    assert registry.get_sample_value("opsbot_incident_channels_total", resumed) == 1.0


def test_a_start_killed_after_it_posted_the_summary_leaves_one_summary(
    paged: Paged,
    settings: Settings,
    make_service: Callable[..., LiveService],
    slack: SlackEmulator,
) -> None:
    first, base = paged.process, paged.base
    incident_id = paged.incident_id()
    # Slack pins slowly: the kill comes after the summary is posted, before the setup ends.
    slack.faults.hang_next(1, seconds=3.0, calls=("pins.add",))
    start_a_channel(base, incident_id, slack)
    made = paged.made_channel()
    posted = wait_for(lambda: summaries(slack, made), timeout_s=20, interval_s=0.02)
    first.kill()
    slack.faults.clear()

    clock = ManualClock(datetime.now(UTC))
    second = make_service(settings, parse_config(TEST_CONFIG), clock=clock, run_jobs=False)
    clock.advance(seconds=CLAIM_S + 1)
    later = slack.response_url()
    click(second, render.START_CHANNEL, str(incident_id), user_id="U0BOB", response_url=later)
    wait_for(lambda: responses_to(slack, later))
    wait_for(lambda: outbox_idle(second))
    assert f"Started <#{made}>" in " ".join(str(r.get("text")) for r in responses_to(slack, later))
    assert summaries(slack, made) == posted  # the same one, not a second
    assert slack.pins(made) == posted
