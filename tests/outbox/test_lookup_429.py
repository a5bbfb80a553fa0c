"""A 429 answered to a look-up (conversations.history, .replies or .list, read before
posting again after an attempt that may have landed) pauses that method only: never the
channel's posts, which other deliveries still make. The delivery that drew it looks
again after its Retry-After; others that would look meanwhile wait without asking."""

from __future__ import annotations

import ssl
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from bot.adapters.slack import web_client
from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import PENDING, SLACK_MESSAGE, SLACK_REPLY, Delivery, SlackMessage
from bot.outbox.pacing import Pacer
from bot.outbox.results import Job, MessageRef, Retry, Sent
from bot.outbox.slack_sender import METADATA_EVENT, SlackSender
from bot.outbox.worker import OutboxWorker
from bot.slack_metadata import marked
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_TOKEN
from tests.support import wait_for

CHANNEL = "C0ALERTS"
RETRY_AFTER_S = 600


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


def _after_ambiguous_post(delivery: int, channel: str = CHANNEL) -> Job:
    """A message's second attempt, after one whose answer was lost: it looks first."""
    ref = MessageRef(f"alarm:{delivery}", channel, None, None)
    payload = {"text": f"alarm {delivery}"}
    return Job(delivery, SLACK_MESSAGE, f"slack:{channel}", payload, 2, ref)


def test_a_history_429_holds_look_ups_not_the_channels_posts(
    slack: SlackEmulator, sender: SlackSender
) -> None:
    slack.faults.fail_next(
        1, status=429, retry_after_s=RETRY_AFTER_S, calls=("conversations.history",)
    )
    first = sender.send(_after_ambiguous_post(1))
    assert isinstance(first, Retry)
    assert first.after_s == RETRY_AFTER_S  # it looks again after the Retry-After...
    assert first.pause_target_s is None  # ...and the channel's posts are not paused
    assert not first.waiting  # a refusal, counted and logged as a failed attempt

    # Another delivery's look meanwhile waits for the pause without asking Slack.
    second = sender.send(_after_ambiguous_post(2))
    assert isinstance(second, Retry)
    assert second.waiting and second.pause_target_s is None
    assert 0 < (second.after_s or 0) <= RETRY_AFTER_S
    assert slack.calls_to("conversations.history") == []
    assert slack.channel_messages(CHANNEL) == []

    # conversations.replies is a method of its own: a reply's look still goes.
    parent = slack.add_message(channel=CHANNEL, text="incident 9")
    ref = MessageRef("incident:9", CHANNEL, CHANNEL, parent.ts)
    reply = Job(3, SLACK_REPLY, f"slack:{CHANNEL}", {"text": "note"}, 2, ref)
    assert isinstance(sender.send(reply), Sent)
    assert len(slack.calls_to("conversations.replies")) == 1
    assert [m.text for m in slack.thread(CHANNEL, parent.ts)] == ["note"]


def test_a_list_429_retries_the_delivery_without_pausing_its_channel(
    slack: SlackEmulator, sender: SlackSender
) -> None:
    slack.faults.fail_next(1, status=429, retry_after_s=45, calls=("conversations.list",))
    result = sender.send(_after_ambiguous_post(1, channel="#alerts"))
    assert isinstance(result, Retry)
    assert (result.after_s, result.pause_target_s) == (45, None)
    assert slack.channel_messages(CHANNEL) == []


def test_an_update_429_of_a_post_found_after_all_does_not_pause_the_channel(
    slack: SlackEmulator, sender: SlackSender
) -> None:
    # The first attempt landed: the second finds it and updates it, a chat.update.
    landed = slack.add_message(channel=CHANNEL, text="alarm 1")
    landed.metadata = marked(METADATA_EVENT, {"delivery": 1})
    slack.faults.fail_next(1, status=429, retry_after_s=20, calls=("chat.update",))
    result = sender.send(_after_ambiguous_post(1))
    assert isinstance(result, Retry)
    assert (result.after_s, result.pause_target_s) == (20, None)
    assert len(slack.channel_messages(CHANNEL)) == 1


def _queue(engine: sa.Engine, key: str, text: str) -> None:
    with make_sessionmaker(engine)() as db_session:
        outbox.post_or_update(
            db_session,
            key=key,
            channel=CHANNEL,
            message={"text": text},
            now=SystemClock().now(),
        )
        db_session.commit()


def _delivery(engine: sa.Engine, key: str) -> Delivery:
    with make_sessionmaker(engine)() as db_session:
        row = db_session.scalars(sa.select(Delivery).where(Delivery.message_key == key)).one()
        db_session.expunge(row)
        return row


def test_a_history_429_does_not_hold_another_post_in_that_channel(
    engine: sa.Engine, slack: SlackEmulator, sender: SlackSender
) -> None:
    _queue(engine, "alarm:a", "A")
    with make_sessionmaker(engine)() as db_session:
        # Its first post timed out: its next attempt looks for it before posting again.
        db_session.execute(sa.update(Delivery).values(attempts=1))
        db_session.commit()
    slack.faults.fail_next(
        1, status=429, retry_after_s=RETRY_AFTER_S, calls=("conversations.history",)
    )
    pacer = Pacer(lambda lane: (100.0, 100.0))
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_MESSAGE: sender.send, SLACK_REPLY: sender.send},
        pacer=pacer,
        settings=DeliverySettings(poll_interval_s=0.05),
        metrics=Metrics(),
    )
    worker.start()
    try:
        wait_for(lambda: "ratelimited" in (_delivery(engine, "alarm:a").last_error or ""))
        assert f"slack:{CHANNEL}" not in pacer.waiting()
        _queue(engine, "alarm:b", "B")
        # Before the fix, B waited out the history's Retry-After (ten minutes).
        wait_for(lambda: [m.text for m in slack.channel_messages(CHANNEL)] == ["B"], timeout_s=20)
    finally:
        worker.stop()
    a = _delivery(engine, "alarm:a")
    assert (a.status, a.attempts) == (PENDING, 2)
    with make_sessionmaker(engine)() as db_session:
        assert (
            db_session.scalar(sa.select(SlackMessage.ts).where(SlackMessage.key == "alarm:a"))
            is None
        )
