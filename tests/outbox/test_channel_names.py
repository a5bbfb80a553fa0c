"""Channels configured by `#name`: read back and updated by their id, as Slack requires.

Slack takes a name in chat.postMessage only; conversations.history,
conversations.replies and chat.update answer channel_not_found to one (the
emulator does the same). A look before posting again that failed so would post
a second copy of a message whose first attempt landed.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from bot.adapters.slack import web_client
from bot.config import parse_config
from bot.outbox.models import Delivery, SlackMessage
from bot.outbox.results import Dead, Job, MessageRef, Sent
from bot.outbox.slack_sender import SlackSender
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_TOKEN, TEST_CONFIG
from tests.incidents.helpers import send_alarm
from tests.support import LiveService, wait_for

LOST_S = 2.0  # a hang past the client's timeout (1 s): Slack takes the post, its answer is lost


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


def message_job(attempts: int, ref: MessageRef, text: str = "alarm 77") -> Job:
    return Job(77, "slack.message", "slack:#alerts", {"text": text}, attempts, ref)


def copies(slack: SlackEmulator, text: str, thread_ts: str | None = None) -> int:
    found = slack.thread("C0ALERTS", thread_ts) if thread_ts else slack.channel_messages("C0ALERTS")
    return sum(1 for m in found if m.text == text)


def test_a_post_whose_answer_was_lost_is_found_by_the_look_and_not_posted_twice(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    ref = MessageRef("incident:77", "#alerts", None, None)
    slack.faults.hang_next(1, seconds=LOST_S, calls=("chat.postMessage",))
    assert not isinstance(sender.send(message_job(1, ref)), Sent)  # the answer was lost
    wait_for(lambda: copies(slack, "alarm 77") == 1)  # ... but Slack took the post

    result = sender.send(message_job(2, ref))

    assert isinstance(result, Sent) and result.channel_id == "C0ALERTS"
    assert copies(slack, "alarm 77") == 1
    [look] = slack.calls_to("conversations.history")
    assert look.args["channel"] == "C0ALERTS"


def test_a_message_in_a_thread_whose_answer_was_lost_is_found_and_recorded_by_id(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    parent = slack.add_message(channel="C0ALERTS", text="group of 3 alarms")
    ref = MessageRef("incident:77", "#alerts", None, None, thread_ts=parent.ts)
    slack.faults.hang_next(1, seconds=LOST_S, calls=("chat.postMessage",))
    assert not isinstance(sender.send(message_job(1, ref)), Sent)
    wait_for(lambda: copies(slack, "alarm 77", parent.ts) == 1)

    found = sender.send(message_job(2, ref, text="alarm 77 (OK)"))

    assert isinstance(found, Sent) and found.channel_id == "C0ALERTS"
    assert copies(slack, "alarm 77 (OK)", parent.ts) == 1
    assert copies(slack, "alarm 77", parent.ts) == 0
    # Its later updates go by the id it was recorded with.
    posted = MessageRef("incident:77", "#alerts", found.channel_id, found.ts, parent.ts)
    assert isinstance(sender.send(message_job(1, posted, text="alarm 77 (ALARM)")), Sent)
    assert copies(slack, "alarm 77 (ALARM)", parent.ts) == 1


def test_a_thread_reply_whose_answer_was_lost_is_not_posted_twice(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    parent = slack.add_message(channel="C0ALERTS", text="incident 41")
    ref = MessageRef("incident:41", "#alerts", "C0ALERTS", parent.ts)
    reply = Job(12, "slack.reply", "slack:#alerts", {"text": "note: DB failover"}, 1, ref)
    slack.faults.hang_next(1, seconds=LOST_S, calls=("chat.postMessage",))
    assert not isinstance(sender.send(reply), Sent)
    wait_for(lambda: copies(slack, "note: DB failover", parent.ts) == 1)

    again = Job(12, "slack.reply", "slack:#alerts", {"text": "note: DB failover"}, 2, ref)
    assert isinstance(sender.send(again), Sent)
    assert copies(slack, "note: DB failover", parent.ts) == 1


def test_a_message_recorded_with_a_channel_name_is_updated_by_its_id(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    # Recorded so by an earlier version, which kept the configured name after a look.
    posted = slack.add_message(channel="C0ALERTS", text="alarm 77")
    ref = MessageRef("incident:77", "#alerts", "#alerts", posted.ts)

    result = sender.send(message_job(1, ref, text="alarm 77 (OK)"))

    assert result == Sent(ts=posted.ts, channel_id="C0ALERTS")  # the worker records the id
    assert copies(slack, "alarm 77 (OK)") == 1


def test_channel_names_are_listed_once_not_at_every_look(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    for n in range(3):
        ref = MessageRef(f"incident:{n}", "#alerts", None, None)
        sender.send(Job(n, "slack.message", "slack:#alerts", {"text": f"alarm {n}"}, 2, ref))
    assert len(slack.calls_to("conversations.list")) == 1
    assert len(slack.calls_to("conversations.history")) == 3


def test_a_direct_message_to_a_person_lists_no_channels(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    # A lock reminder goes to the holder's user id: no channel list names it.
    ref = MessageRef("lock:1", "U0ALICE", None, None)
    sender.send(Job(1, "slack.message", "slack:U0ALICE", {"text": "still locked"}, 2, ref))
    assert slack.calls_to("conversations.list") == []


def test_a_name_no_channel_has_is_posted_without_the_look_and_says_which_delivery(
    sender: SlackSender, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    ref = MessageRef("incident:9", "#gone", None, None)
    with caplog.at_level("WARNING", logger="bot.outbox.slack_sender"):
        result = sender.send(Job(9, "slack.message", "slack:#gone", {"text": "x"}, 2, ref))
    assert result == Dead(error="channel_not_found")  # as chat.postMessage answered
    [warning] = [r for r in caplog.records if "cannot read back" in r.getMessage()]
    assert warning.getMessage().startswith("delivery 9: ")
    assert getattr(warning, "delivery", None) == 9


def test_the_emulator_takes_a_channel_name_only_where_slack_does(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    client = sender.client
    posted = client.chat_postMessage(channel="#alerts", text="by name")
    assert posted["channel"] == "C0ALERTS"
    by_name: list[Callable[[], object]] = [
        lambda: client.chat_update(channel="#alerts", ts=posted["ts"], text="x"),
        lambda: client.conversations_history(channel="#alerts"),
        lambda: client.conversations_replies(channel="#alerts", ts=posted["ts"]),
        lambda: client.conversations_info(channel="alerts"),
    ]
    for call in by_name:
        with pytest.raises(Exception, match="channel_not_found"):
            call()
    assert client.chat_update(channel="C0ALERTS", ts=posted["ts"], text="x")["ok"]


# -- through the service, its route configured by name ------------------------------------


@pytest.fixture
def named_service(settings: Settings, make_service: Callable[..., LiveService]) -> LiveService:
    routes: list[dict[str, Any]] = [
        {**route, "channel": "#prod-alerts"} if route["name"] == "prod" else route
        for route in TEST_CONFIG["alarm_routes"]
    ]
    return make_service(settings, parse_config({**TEST_CONFIG, "alarm_routes": routes}))


def test_an_alarm_on_a_route_configured_by_name_is_posted_once_when_the_answer_is_lost(
    named_service: LiveService,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    service = named_service
    # Request_timeout_s is 2; the claim's lease (5 s) outlasts the hang.
    slack.faults.hang_next(1, seconds=3.0, calls=("chat.postMessage",))
    send_alarm(service, sns_signer, "prod-slow", "ALARM")

    def settled() -> bool:
        with service.runtime.sessions() as db:
            pending = sa.select(sa.func.count()).where(Delivery.status == "pending")
            return db.scalar(pending) == 0

    wait_for(settled, timeout_s=60)
    assert len(slack.channel_messages("C0PRODALERTS")) == 1
    assert [c.args["channel"] for c in slack.calls_to("conversations.history")] == ["C0PRODALERTS"]
    with service.runtime.sessions() as db:
        assert db.scalars(sa.select(Delivery).where(Delivery.status == "dead")).all() == []
        [recorded] = db.scalars(sa.select(SlackMessage)).all()
        assert (recorded.channel, recorded.channel_id) == ("#prod-alerts", "C0PRODALERTS")
