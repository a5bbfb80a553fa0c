"""Commands renamed on the way out (`/deploy` → `/ops deploy`) keep each text within Slack's
limit: a text cut to fit before, full of commands from outside, is cut again after.

Slack refuses a whole message or answer with one block too long; a short text
that names a command is renamed whole.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from bot.adapters.slack import Answered, web_client
from bot.commands import Naming
from bot.outbox.models import SLACK_MESSAGE, SLACK_RESPONSE
from bot.outbox.results import Job, MessageRef, Sent
from bot.outbox.slack_sender import SlackSender
from bot.slack_text import BUTTON_MAX, CONTEXT_MAX, SECTION_MAX, clip
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_TOKEN

MENTIONS = "`/deploy" * 500  # outside text: a flag change's words, an alarm's description


def blocks() -> list[dict[str, Any]]:
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(MENTIONS, SECTION_MAX)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(MENTIONS, CONTEXT_MAX)}]},
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "action_id": "a",
                    "value": "v",
                    "text": {"type": "plain_text", "text": clip(MENTIONS, BUTTON_MAX)},
                }
            ],
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": "See `/deploy history api`."}},
    ]


def too_long(sent: list[dict[str, Any]]) -> list[int]:
    sizes = [
        (len(sent[0]["text"]["text"]), SECTION_MAX),
        (len(sent[1]["elements"][0]["text"]), CONTEXT_MAX),
        (len(sent[2]["elements"][0]["text"]["text"]), BUTTON_MAX),
    ]
    return [size for size, limit in sizes if size > limit]


@pytest.fixture
def answers() -> list[Mapping[str, Any]]:
    return []


@pytest.fixture
def sender(slack: SlackEmulator, answers: list[Mapping[str, Any]]) -> Iterator[SlackSender]:
    client = web_client(
        token=SLACK_TOKEN,
        base_url=slack.api_url,
        tls=ssl.create_default_context(),
        timeout_s=2,
        retries=False,
    )

    def answer(_url: str, body: Mapping[str, Any]) -> Answered:
        answers.append(body)
        return Answered(status_code=200, headers={}, body="ok")

    yield SlackSender(client, answer, naming=Naming(style="single", prefix="ops"))
    client.close()


def test_a_message_renamed_keeps_each_block_within_slacks_limits(
    sender: SlackSender, slack: SlackEmulator
) -> None:
    payload = {"text": "Deployed: `/deploy history api` lists it", "blocks": blocks()}
    job = Job(
        1, SLACK_MESSAGE, "slack:C0ALERTS", payload, 1, MessageRef("k", "C0ALERTS", None, None)
    )
    assert isinstance(sender.send(job), Sent)
    [message] = slack.channel_messages("C0ALERTS")
    assert message.blocks is not None
    assert too_long(message.blocks) == []
    assert "`/ops deploy`/ops deploy" in message.blocks[0]["text"]["text"]
    # Short texts are renamed whole, nothing cut.
    assert message.text == "Deployed: `/ops deploy history api` lists it"
    assert message.blocks[3]["text"]["text"] == "See `/ops deploy history api`."


def test_an_answer_renamed_keeps_each_block_within_slacks_limits(
    sender: SlackSender, answers: list[Mapping[str, Any]]
) -> None:
    body = {"response_type": "ephemeral", "text": "`/deploy` answered", "blocks": blocks()}
    payload = {"response_url": "https://hooks.example/commands/1", "body": body}
    job = Job(2, SLACK_RESPONSE, "slack_response", payload, 1, None)
    assert isinstance(sender.send(job), Sent)
    [sent] = answers
    assert too_long(sent["blocks"]) == []
    assert sent["text"] == "`/ops deploy` answered"


def test_only_display_text_is_renamed_never_what_a_click_hands_back() -> None:
    # A question's button carries its command as JSON, with the typed --force reason:
    # renamed and cut, its value no longer parsed, and the click could not run.
    value = json.dumps({"force_reason": "checked with `/deploy history web prod`" * 3})
    body = {
        "text": "Deploy anyway? `/deploy`",
        "blocks": [
            {
                "type": "actions",
                "block_id": "`/deploy",
                "elements": [
                    {
                        "type": "button",
                        "action_id": "`/deploy",
                        "value": value,
                        "url": "https://example.com/`/deploy",
                        "text": {"type": "plain_text", "text": "Continue `/deploy`"},
                    }
                ],
            }
        ],
        "private_metadata": value,
    }
    named = Naming(style="single", prefix="ops").named_body(body)
    [button] = named["blocks"][0]["elements"]
    assert (button["value"], button["action_id"], button["url"]) == (
        value,
        "`/deploy",
        "https://example.com/`/deploy",
    )
    assert named["blocks"][0]["block_id"] == "`/deploy"
    assert named["private_metadata"] == value
    assert button["text"]["text"] == "Continue `/ops deploy`"
    assert named["text"] == "Deploy anyway? `/ops deploy`"
