"""A thread reply queued before its message was deleted in Slack waits for the message
to be posted again and lands in the new one's thread; it is given up only when no post
of its message is owed.

The message's update goes before the reply queued earlier (as designed), finds the
message gone and forgets its ts; the reply, earlier in the channel's posts lane, is then
claimed before the repost.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters.slack import web_client
from bot.clock import SystemClock
from bot.config import DeliverySettings
from bot.db.engine import make_sessionmaker
from bot.observability.metrics import Metrics
from bot.outbox import service as outbox
from bot.outbox.models import DEAD, SENT, SLACK_MESSAGE, SLACK_REPLY, Delivery, SlackMessage
from bot.outbox.pacing import Pacer
from bot.outbox.results import Dead, Job, MessageRef, Retry
from bot.outbox.slack_sender import MAX_UNKNOWN_ATTEMPTS, SlackSender
from bot.outbox.worker import OutboxWorker
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_TOKEN
from tests.support import wait_for

CHANNEL = "C0ALERTS"
KEY = "incident:7"


class _Monotonic:
    """The pacer's clock, moved by the test: a lane's pause ends when the test says."""

    def __init__(self) -> None:
        self.now = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


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


def _post_or_update(engine: sa.Engine, text: str) -> None:
    with make_sessionmaker(engine)() as db_session:
        outbox.post_or_update(
            db_session, key=KEY, channel=CHANNEL, message={"text": text}, now=SystemClock().now()
        )
        db_session.commit()


def _reply(engine: sa.Engine, text: str) -> None:
    def render(items: list[dict[str, Any]]) -> dict[str, Any]:
        return {"text": " / ".join(str(item["text"]) for item in items)}

    with make_sessionmaker(engine)() as db_session:
        outbox.reply_in_thread(
            db_session,
            key=KEY,
            channel=CHANNEL,
            fold_key=f"{KEY}:notes",
            item={"text": text},
            render=render,
            now=SystemClock().now(),
        )
        db_session.commit()


def _ts(engine: sa.Engine) -> str | None:
    with make_sessionmaker(engine)() as db_session:
        return db_session.scalar(sa.select(SlackMessage.ts).where(SlackMessage.key == KEY))


def _rows(engine: sa.Engine) -> list[tuple[str, str, int]]:
    with make_sessionmaker(engine)() as db_session:
        query = sa.select(Delivery.kind, Delivery.status, Delivery.attempts).order_by(Delivery.id)
        return [(kind, status, attempts) for kind, status, attempts in db_session.execute(query)]


def test_a_reply_queued_before_a_repost_lands_in_the_reposted_thread(
    engine: sa.Engine, slack: SlackEmulator, sender: SlackSender
) -> None:
    monotonic = _Monotonic()
    pacer = Pacer(lambda lane: (1000.0, 1000.0), monotonic=monotonic)
    worker = OutboxWorker(
        sessions=make_sessionmaker(engine),
        senders={SLACK_MESSAGE: sender.send, SLACK_REPLY: sender.send},
        pacer=pacer,
        settings=DeliverySettings(poll_interval_s=0.05),
        metrics=Metrics(),
    )
    worker.start()
    try:
        _post_or_update(engine, "v1")
        first_ts = wait_for(lambda: _ts(engine))
        # The channel's posts wait (paced in a storm): the reply queued now waits too.
        pacer.pause(f"slack:{CHANNEL}", 1000.0)
        _reply(engine, "note")
        # Someone deletes the message; its next update finds it gone and forgets its ts.
        with slack.lock:
            slack.messages[CHANNEL] = [m for m in slack.messages[CHANNEL] if m.ts != first_ts]
        _post_or_update(engine, "v2")
        wait_for(lambda: _ts(engine) is None and _rows(engine)[2][2] == 1)
        # The lane frees: the reply, queued before the update, is claimed before the repost.
        monotonic.advance(2000.0)
        wait_for(lambda: all(status != "pending" for _, status, _ in _rows(engine)))
    finally:
        worker.stop()
    new_ts = _ts(engine)
    assert new_ts is not None and new_ts != first_ts
    assert [m.text for m in slack.channel_messages(CHANNEL)] == ["v2"]
    assert [m.text for m in slack.thread(CHANNEL, new_ts)] == ["note"]
    assert [status for _, status, _ in _rows(engine)] == [SENT, SENT, SENT]
    assert DEAD not in {status for _, status, _ in _rows(engine)}
    # The reply was not claimed while the repost was owed: its one attempt is its post.
    assert _rows(engine)[1][2] == 1


def _reply_under(parent: MessageRef, attempts: int) -> Job:
    return Job(9, SLACK_REPLY, f"slack:{CHANNEL}", {"text": "note"}, attempts, parent)


def test_a_reply_waits_while_its_messages_post_is_owed_and_dies_when_none_is(
    sender: SlackSender,
) -> None:
    owed = MessageRef(KEY, CHANNEL, None, None, owed=True)
    waits = sender.send(_reply_under(owed, 3 * MAX_UNKNOWN_ATTEMPTS))
    assert isinstance(waits, Retry) and waits.waiting
    never = MessageRef(KEY, CHANNEL, None, None, owed=False)
    assert isinstance(sender.send(_reply_under(never, 1)), Dead)
    # Not said by the claim: it waits as long as an unknown error is tried.
    unknown = MessageRef(KEY, CHANNEL, None, None)
    assert isinstance(sender.send(_reply_under(unknown, 1)), Retry)
    assert isinstance(sender.send(_reply_under(unknown, MAX_UNKNOWN_ATTEMPTS)), Dead)
