"""The look for an earlier attempt that landed reads everything written since a
little before its delivery was, page after page, however long the thread or busy
the channel before it; and it reads a bounded number of pages, past which it posts
without the check (logged).

conversations.replies lists a thread oldest first: a reply whose answer was lost
is at the thread's end, behind every message written before it. The emulator's
ts are all in the second it started; `_written` moves a message back in time, as
if written that long ago.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bot.adapters.slack import web_client
from bot.outbox.models import SLACK_MESSAGE, SLACK_REPLY
from bot.outbox.results import Job, MessageRef, Sent
from bot.outbox.slack_sender import LOOK_PAGE, LOOK_PAGES, METADATA_EVENT, SlackSender
from bot.slack_metadata import marked
from sandbox.slack import Message, SlackEmulator
from tests.conftest import SLACK_TOKEN

CHANNEL = "C0ALERTS"
DELIVERY = 555
HOURS_AGO = 2 * 3600


@pytest.fixture
def sender(slack: SlackEmulator) -> Iterator[SlackSender]:
    client = web_client(
        token=SLACK_TOKEN,
        base_url=slack.api_url,
        tls=ssl.create_default_context(),
        timeout_s=1,
        retries=False,
    )
    yield SlackSender(client, lambda _url, _body: None)  # type: ignore[arg-type,return-value]
    client.close()


def _written(
    slack: SlackEmulator, text: str, *, thread_ts: str | None = None, ago_s: int = 0
) -> Message:
    message = slack.add_message(channel=CHANNEL, text=text, thread_ts=thread_ts)
    message.ts = str(Decimal(message.ts) - ago_s)
    return message


def _landed(slack: SlackEmulator, text: str, *, thread_ts: str | None = None) -> Message:
    """The delivery's earlier attempt, which Slack took though its answer was lost."""
    message = _written(slack, text, thread_ts=thread_ts)
    message.metadata = marked(METADATA_EVENT, {"delivery": DELIVERY})
    return message


def _written_at(old: Message) -> datetime:
    """When the delivery was written: the emulator's present, HOURS_AGO after `old`."""
    return datetime.fromtimestamp(int(Decimal(old.ts)) + HOURS_AGO, UTC)


def _reply_job(parent: Message, written_at: datetime) -> Job:
    ref = MessageRef("incident:9", CHANNEL, CHANNEL, parent.ts)
    payload = {"text": "now OK"}
    return Job(DELIVERY, SLACK_REPLY, f"slack:{CHANNEL}", payload, 2, ref, created_at=written_at)


def _copies(slack: SlackEmulator, text: str, thread_ts: str | None = None) -> int:
    found = slack.thread(CHANNEL, thread_ts) if thread_ts else slack.channel_messages(CHANNEL)
    return sum(1 for m in found if m.text == text)


def _long_thread(slack: SlackEmulator, replies: int) -> Message:
    """A long flapping incident's thread (notes, transitions, people), written hours ago."""
    parent = _written(slack, "incident #9", ago_s=HOURS_AGO)
    for i in range(replies):
        _written(slack, f"reply {i}", thread_ts=parent.ts, ago_s=HOURS_AGO)
    return parent


def test_a_reply_lost_at_the_end_of_a_long_thread_is_found_not_posted_again(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    parent = _long_thread(slack, 1500)
    written_at = _written_at(parent)
    lost = _landed(slack, "now OK", thread_ts=parent.ts)
    for i in range(250):  # people answer in the thread meanwhile
        _written(slack, f"later {i}", thread_ts=parent.ts)

    result = sender.send(_reply_job(parent, written_at))

    assert result == Sent(ts=lost.ts, channel_id=CHANNEL)
    assert _copies(slack, "now OK", parent.ts) == 1
    assert len(slack.calls_to("conversations.replies")) == 1  # the hours before are skipped


def test_a_reply_with_no_time_of_writing_reads_the_thread_from_its_start(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    parent = _long_thread(slack, 450)
    lost = _landed(slack, "now OK", thread_ts=parent.ts)
    job = dataclasses.replace(_reply_job(parent, _written_at(parent)), created_at=None)

    assert sender.send(job) == Sent(ts=lost.ts, channel_id=CHANNEL)
    assert _copies(slack, "now OK", parent.ts) == 1
    assert len(slack.calls_to("conversations.replies")) == 3  # 452 messages, 200 a page


def test_a_post_lost_behind_a_busy_channel_is_found_not_posted_again(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    for i in range(300):
        _written(slack, f"yesterday {i}", ago_s=HOURS_AGO)
    written_at = _written_at(slack.channel_messages(CHANNEL)[0])
    lost = _landed(slack, "alarm 9")
    for i in range(250):  # a storm's other alarms, posted after it
        _written(slack, f"alarm {100 + i}")
    ref = MessageRef("incident:9", CHANNEL, None, None)
    payload = {"text": "alarm 9"}
    job = Job(DELIVERY, SLACK_MESSAGE, f"slack:{CHANNEL}", payload, 2, ref, created_at=written_at)

    result = sender.send(job)

    assert result == Sent(ts=lost.ts, channel_id=CHANNEL)
    assert _copies(slack, "alarm 9") == 1
    assert not slack.calls_to("chat.postMessage")


def test_past_its_pages_the_look_posts_without_the_check_and_says_so(
    sender: SlackSender, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    parent = _long_thread(slack, 10)
    written_at = _written_at(parent)
    for i in range(LOOK_PAGES * LOOK_PAGE):  # all written after the delivery, before its post
        _written(slack, f"busy {i}", thread_ts=parent.ts)
    _landed(slack, "now OK", thread_ts=parent.ts)

    with caplog.at_level(logging.WARNING, logger="bot.outbox.slack_sender"):
        result = sender.send(_reply_job(parent, written_at))

    assert isinstance(result, Sent)
    assert len(slack.calls_to("conversations.replies")) == LOOK_PAGES  # bounded
    assert _copies(slack, "now OK", parent.ts) == 2  # a double, rather than a loss
    [warning] = [r for r in caplog.records if "cannot read back" in r.getMessage()]
    assert f"delivery {DELIVERY}" in warning.getMessage()
    assert f"over {LOOK_PAGES * LOOK_PAGE} messages since the delivery" in warning.getMessage()
