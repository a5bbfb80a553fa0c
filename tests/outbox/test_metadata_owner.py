"""The look for an earlier attempt takes only a message opsbot's own bot posted.

Anyone in a channel (a person, another app) can post a message with the mark of
a delivery, whose number is easy to guess. After an attempt whose answer was
lost, such a look-alike is not taken for the attempt: the delivery is posted
(once), and the look-alike is left as it is. The emulator sets `bot_id` on what
opsbot's token posts, as Slack does, and on nothing else.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from collections.abc import Iterator

import pytest

from bot.adapters.slack import web_client
from bot.outbox.models import SLACK_MESSAGE, SLACK_REPLY
from bot.outbox.results import Job, MessageRef, Retry, Sent
from bot.outbox.slack_sender import METADATA_EVENT, SlackSender
from bot.slack_metadata import marked
from sandbox.slack import BOT_USER, Message, SlackEmulator
from tests.conftest import SLACK_TOKEN

CHANNEL = "C0ALERTS"
DELIVERY = 777
MALLORY = "U0MALLORY"


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


def _marked_by(
    slack: SlackEmulator, user: str, text: str, *, thread_ts: str | None = None
) -> Message:
    """A message carrying the delivery's mark, posted by `user` (opsbot's bot or not)."""
    message = slack.add_message(channel=CHANNEL, text=text, thread_ts=thread_ts, user=user)
    message.metadata = marked(METADATA_EVENT, {"delivery": DELIVERY})
    return message


def _message_job() -> Job:
    ref = MessageRef("alarm:9", CHANNEL, None, None)
    return Job(DELIVERY, SLACK_MESSAGE, f"slack:{CHANNEL}", {"text": "alarm 9"}, 2, ref)


def test_a_look_alike_in_the_channel_is_not_taken_and_the_post_goes_out_once(
    sender: SlackSender, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    fake = _marked_by(slack, MALLORY, "click <https://evil.example|here>")

    with caplog.at_level(logging.WARNING, logger="bot.slack_metadata"):
        result = sender.send(_message_job())

    [post] = slack.calls_to("chat.postMessage")
    assert post.ok
    assert isinstance(result, Sent) and result.ts not in (None, fake.ts)
    assert not slack.calls_to("chat.update")
    assert fake.updates == 0 and fake.text == "click <https://evil.example|here>"
    assert [m.text for m in slack.channel_messages(CHANNEL) if m.text == "alarm 9"] == ["alarm 9"]
    [warning] = [r for r in caplog.records if "another posted it" in r.getMessage()]
    assert getattr(warning, "slack_user", None) == MALLORY


def test_a_look_alike_posted_after_the_landed_attempt_does_not_hide_it(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    # The attempt landed (its answer lost); someone copied its mark since: newer, listed first.
    landed = _marked_by(slack, BOT_USER, "alarm 9")
    fake = _marked_by(slack, MALLORY, "copied")

    result = sender.send(_message_job())

    assert result == Sent(ts=landed.ts, channel_id=CHANNEL)
    assert not slack.calls_to("chat.postMessage")
    assert landed.updates == 1 and fake.updates == 0 and fake.text == "copied"


def test_a_look_alike_in_the_thread_is_not_taken_for_a_reply(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    parent = slack.add_message(channel=CHANNEL, text="incident #9")
    fake = _marked_by(slack, MALLORY, "not opsbot's", thread_ts=parent.ts)
    ref = MessageRef("incident:9", CHANNEL, CHANNEL, parent.ts)
    job = Job(DELIVERY, SLACK_REPLY, f"slack:{CHANNEL}", {"text": "now OK"}, 2, ref)

    result = sender.send(job)

    assert isinstance(result, Sent) and result.ts != fake.ts
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert fake.updates == 0
    assert [m.text for m in slack.thread(CHANNEL, parent.ts)].count("now OK") == 1


def test_when_slack_does_not_say_who_the_bot_is_the_delivery_waits_and_posts_nothing() -> None:
    # A token of its own: no earlier look in this process has asked Slack about it.
    token = f"xoxb-{uuid.uuid4().hex}"
    slack = SlackEmulator(token=token)
    slack.add_channel(CHANNEL, "alerts")
    slack.start()
    client = web_client(
        token=token,
        base_url=slack.api_url,
        tls=ssl.create_default_context(),
        timeout_s=1,
        retries=False,
    )
    try:
        landed = _marked_by(slack, BOT_USER, "alarm 9")
        slack.faults.fail_next(1, status=503, calls=("auth.test",))
        sender = SlackSender(client, lambda _url, _body: None)  # type: ignore[arg-type,return-value]

        assert isinstance(sender.send(_message_job()), Retry)
        assert not slack.calls_to("chat.postMessage") and landed.updates == 0

        assert sender.send(_message_job()) == Sent(ts=landed.ts, channel_id=CHANNEL)
        assert not slack.calls_to("chat.postMessage")
    finally:
        client.close()
        slack.stop()
