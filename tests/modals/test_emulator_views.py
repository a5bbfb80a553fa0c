"""The Slack emulator's views.open, views.update and views.push, through the real slack_sdk client."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import SlackEmulator


def view(title: str = "Deploy", **extra: Any) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": "cb",
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Go"},
        "blocks": [
            {
                "type": "input",
                "block_id": "b",
                "label": {"type": "plain_text", "text": "Tag"},
                "element": {"type": "plain_text_input", "action_id": "b"},
            }
        ],
        **extra,
    }


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    slack = SlackEmulator().start()
    yield slack
    slack.stop()


@pytest.fixture
def client(emulator: SlackEmulator) -> WebClient:
    web = WebClient(token=emulator.token, base_url=emulator.api_url)
    web.retry_handlers = []
    return web


def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        call()
    return str(caught.value.response["error"])


def test_a_trigger_opens_one_view_for_its_user(emulator: SlackEmulator, client: WebClient) -> None:
    trigger = emulator.trigger_id(user="U0ALICE", channel="C0ALERTS")
    answer = client.views_open(trigger_id=trigger, view=view(private_metadata="m"))
    opened = answer["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert opened["private_metadata"] == "m"
    [shown] = emulator.open_views("U0ALICE")
    assert shown.id == opened["id"] and emulator.open_views("U0BOB") == []
    # A trigger is good for one view only.
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=view())) == (
        "trigger_exchanged"
    )


def test_expired_and_unknown_triggers_are_refused(
    emulator: SlackEmulator, client: WebClient
) -> None:
    trigger = emulator.trigger_id(user="U0ALICE")
    emulator.expire_trigger(trigger)
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=view())) == (
        "expired_trigger_id"
    )
    assert error_of(lambda: client.views_open(trigger_id="1.2.3", view=view())) == (
        "invalid_trigger_id"
    )
    assert emulator.open_views() == []


@pytest.mark.parametrize(
    "bad",
    [
        view(title="A title far longer than Slack allows"),
        view(private_metadata="x" * 3001),
        {**view(), "type": "home"},
        {**view(), "submit": None},
    ],
)
def test_a_view_slack_would_refuse_is_refused(
    emulator: SlackEmulator, client: WebClient, bad: dict[str, Any]
) -> None:
    trigger = emulator.trigger_id(user="U0ALICE")
    assert error_of(lambda: client.views_open(trigger_id=trigger, view=bad)) == (
        "invalid_arguments"
    )


def test_update_checks_the_hash_and_push_stacks_over_the_view(
    emulator: SlackEmulator, client: WebClient
) -> None:
    opened = client.views_open(trigger_id=emulator.trigger_id(user="U0ALICE"), view=view())["view"]
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=view("Step 2"))
    assert updated["view"]["title"]["text"] == "Step 2"
    assert updated["view"]["hash"] != opened["hash"]
    stale = lambda: client.views_update(  # noqa: E731
        view_id=opened["id"], hash=opened["hash"], view=view("Step 3")
    )
    assert error_of(stale) == "hash_conflict"
    pushed = client.views_push(trigger_id=emulator.trigger_id(user="U0ALICE"), view=view("More"))
    assert pushed["view"]["root_view_id"] == opened["id"]
    assert [v.view["title"]["text"] for v in emulator.open_views("U0ALICE")] == ["Step 2", "More"]
    # Slack's answer to a submission: `clear` closes the whole stack.
    emulator.answer_submission(pushed["view"]["id"], {"response_action": "clear"})
    assert emulator.open_views() == []
    assert error_of(lambda: client.views_update(view_id=opened["id"], view=view())) == "not_found"


def test_answers_to_a_submission_act_as_slack_does(
    emulator: SlackEmulator, client: WebClient
) -> None:
    opened = client.views_open(trigger_id=emulator.trigger_id(user="U0ALICE"), view=view())["view"]
    emulator.answer_submission(opened["id"], {"response_action": "errors", "errors": {"b": "no"}})
    shown = emulator.get_view(opened["id"])
    assert shown is not None and shown.errors == {"b": "no"} and not shown.closed
    emulator.answer_submission(opened["id"], {"response_action": "update", "view": view("Again")})
    assert shown.view["title"]["text"] == "Again" and shown.errors == {}
    emulator.answer_submission(opened["id"], None)  # an empty ack closes it
    assert shown.closed
