"""Slack over Socket Mode, through slack_sdk's builtin client and the emulator's websocket.

opsbot runs with SLACK_APP_TOKEN and no signing secret: it opens the websocket
itself, Slack's envelopes reach the handlers HTTP would, answers leave through
the outbox; a lost connection is opened again, after failed attempts with
growing waits; nothing owed to Slack meanwhile is lost; a malformed message is
refused and the next one handled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from bot import commands
from bot.commands import SEPARATE
from bot.config import parse_config
from bot.incidents import render
from bot.outbox.models import Delivery
from bot.settings import Settings
from handlers.slack_socket import backoff_s
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.slack_requests import block_action, event_callback, slash_command
from sandbox.sns import SnsSigner
from tests.conftest import SLACK_SIGNING_SECRET, TEST_CONFIG
from tests.incidents.helpers import (
    incident_row,
    message_text,
    outbox_idle,
    page,
    pd_calls,
    responses_to,
    send_alarm,
)
from tests.support import LiveService, slack_headers, wait_for

PING_S = 0.2  # a dead connection is found after four unanswered pings


@pytest.fixture
def socket_settings(settings: Settings, slack: SlackEmulator) -> Iterator[Settings]:
    yield settings.model_copy(
        update={
            "slack_app_token": SecretStr(slack.app_token),
            "slack_signing_secret": None,  # Socket Mode only: POST /slack/events serves nothing
            "slack_socket_ping_s": PING_S,
            "slack_socket_backoff_max_s": 1.0,
        }
    )
    slack.socket_stop()


@pytest.fixture
def live(socket_settings: Settings, make_service: Callable[..., LiveService]) -> LiveService:
    return make_service(socket_settings, parse_config(TEST_CONFIG))


def metric(live: LiveService, name: str) -> float:
    return live.runtime.metrics.registry.get_sample_value(name) or 0.0


def emf_socket(live: LiveService) -> float | None:
    """`opsbot_slack_socket_connected` in the EMF line the ops monitor writes now."""
    monitor = live.runtime.ops_monitor
    assert monitor is not None
    emitted: list[str] = []
    monitor.emit = emitted.append
    monitor.write_emf(datetime.now(UTC))
    value: float | None = json.loads(emitted[0]).get("opsbot_slack_socket_connected")
    return value


def command_payload(name: str, text: str, *, response_url: str, user_id: str = "U0ALICE") -> Any:
    form = slash_command(
        name, text, user_id=user_id, channel_id="C0ALERTS", response_url=response_url
    )
    return dict(parse_qsl(form, keep_blank_values=True))


def click_payload(action_id: str, value: str, *, message_ts: str, response_url: str) -> Any:
    form = block_action(
        action_id,
        value,
        user_id="U0BOB",
        channel_id="C0ALERTS",
        message_ts=message_ts,
        response_url=response_url,
    )
    return json.loads(dict(parse_qsl(form))["payload"])


def ready(live: LiveService) -> dict[str, Any]:
    answer = live.get("/readyz")
    return {"code": answer.status_code, **answer.json()}


def test_a_command_and_a_click_over_the_socket_act_as_over_http(
    live: LiveService, slack: SlackEmulator, sns_signer: SnsSigner, pagerduty: PagerDutyEmulator
) -> None:
    slack.socket_wait_connected()
    wait_for(lambda: ready(live)["code"] == 200)
    assert ready(live)["slack_socket"] == "connected"
    assert metric(live, "opsbot_slack_socket_connected") == 1
    incident_id, message = page(live, sns_signer, slack, pagerduty)

    # A slash command: acknowledged by its envelope_id, then acted on as alice.
    envelope = slack.socket_send(
        "slash_commands",
        command_payload("/incident", f"ack {incident_id}", response_url=slack.response_url()),
    )
    assert slack.socket_ack(envelope)["envelope_id"] == envelope
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "alice@example.com"
    assert put["body"]["incident"]["status"] == "acknowledged"
    wait_for(lambda: "acknowledged by <@U0ALICE>" in message_text(message))

    # A click on the message: resolved as bob.
    envelope = slack.socket_send(
        "interactive",
        click_payload(
            render.RESOLVE,
            str(incident_id),
            message_ts=message.ts,
            response_url=slack.response_url(),
        ),
    )
    slack.socket_ack(envelope)
    wait_for(lambda: len(pd_calls(pagerduty, "PUT")) == 2)
    assert pd_calls(pagerduty, "PUT")[1]["from"] == "bob@example.com"
    wait_for(lambda: incident_row(live, incident_id).status == "resolved")
    wait_for(lambda: "resolved by <@U0BOB>" in message_text(message))

    # A command's answer rides the acknowledgement: the same usage text HTTP answers.
    envelope = slack.socket_send(
        "slash_commands", command_payload("/deploy", "help", response_url=slack.response_url())
    )
    assert slack.socket_ack(envelope)["payload"]["text"] == commands.usage("/deploy", SEPARATE)

    # The HTTP door is shut without a signing secret, even to a signed request.
    form = slash_command(
        "/incident",
        "list",
        user_id="U0ALICE",
        channel_id="C0ALERTS",
        response_url=slack.response_url(),
    )
    answer = live.post(
        "/slack/events", content=form, headers=slack_headers(SLACK_SIGNING_SECRET, form)
    )
    assert answer.status_code == 404 and "Socket Mode" in answer.text


def test_a_dropped_connection_is_opened_again_after_growing_waits(
    live: LiveService, slack: SlackEmulator
) -> None:
    slack.socket_wait_connected()
    slack.faults.fail_for(600, status=503, calls=("apps.connections.open",))
    assert slack.socket_drop() == 1
    # Four unanswered pings find the connection dead; Slack refuses new ones meanwhile.
    wait_for(lambda: ready(live)["code"] == 503)
    assert ready(live)["slack_socket"] == "disconnected"
    wait_for(lambda: metric(live, "opsbot_slack_socket_connect_failures_total") >= 3)
    assert metric(live, "opsbot_slack_socket_connected") == 0
    assert emf_socket(live) == 0  # the alarm on no task connected reads this line
    assert slack.socket_links() == []

    slack.faults.clear()
    slack.socket_wait_connected(accepted=2)
    wait_for(lambda: ready(live)["code"] == 200)
    assert metric(live, "opsbot_slack_socket_reconnects_total") == 1
    assert metric(live, "opsbot_slack_socket_connected") == 1
    assert emf_socket(live) == 1
    envelope = slack.socket_send(
        "slash_commands", command_payload("/oncall", "help", response_url=slack.response_url())
    )
    assert "/oncall" in slack.socket_ack(envelope)["payload"]["text"]


def test_backoff_doubles_from_the_ping_interval_up_to_its_ceiling() -> None:
    assert backoff_s(0, first_s=5, max_s=60) == 0
    for failures, ceiling in [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (40, 60)]:
        for _ in range(20):
            assert ceiling / 2 <= backoff_s(failures, first_s=5, max_s=60) <= ceiling


def test_what_is_owed_to_slack_while_it_is_unreachable_is_delivered_after(
    live: LiveService, slack: SlackEmulator, sns_signer: SnsSigner, pagerduty: PagerDutyEmulator
) -> None:
    slack.socket_wait_connected()
    # Bolt asks auth.test once, at its first request.
    first = slack.socket_send(
        "slash_commands", command_payload("/oncall", "help", response_url=slack.response_url())
    )
    slack.socket_ack(first)
    slack.faults.fail_for(600, status=503)  # Slack's Web API, response_urls, new websockets
    # A command on the websocket still open: acknowledged, its answer owed.
    owed = slack.response_url()
    envelope = slack.socket_send(
        "slash_commands", command_payload("/incident", "list", response_url=owed)
    )
    slack.socket_ack(envelope)
    slack.socket_drop()
    send_alarm(live, sns_signer, "prod-api-5xx", "ALARM")  # an alarm: a message owed
    wait_for(lambda: ready(live)["code"] == 503)

    def attempted() -> bool:
        with live.runtime.sessions() as db_session:
            rows = db_session.scalars(sa.select(Delivery)).all()
        return any(r.attempts > 0 and r.status == "pending" for r in rows)

    wait_for(attempted)
    assert slack.all_messages() == [] and responses_to(slack, owed) == []

    slack.faults.clear()
    slack.socket_wait_connected(accepted=2)
    [posted] = wait_for(slack.all_messages)
    assert "prod-api-5xx" in message_text(posted)
    [answer] = wait_for(lambda: responses_to(slack, owed))
    assert answer["response_type"] == "ephemeral"
    wait_for(lambda: outbox_idle(live))
    assert len(slack.all_messages()) == 1  # sent once, not once per retry


@pytest.mark.parametrize(
    ("frame", "why"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"envelope_id": "e1", "type": "slash_commands", "payload": "text"}', "not an object"),
        ('{"envelope_id": "e2", "type": "workflow_steps", "payload": {}}', "envelope type"),
        ('{"type": "slash_commands", "payload": {}}', "no envelope_id"),
        (
            '{"envelope_id": "e3", "type": "interactive", "payload": '
            + "[" * 500
            + "]" * 500
            + "}",
            "deep",
        ),
    ],
)
def test_a_message_of_a_bad_shape_is_refused_and_the_next_one_handled(
    live: LiveService,
    slack: SlackEmulator,
    caplog: pytest.LogCaptureFixture,
    frame: str,
    why: str,
) -> None:
    slack.socket_wait_connected()
    slack.socket_send_raw(frame)
    envelope = slack.socket_send(
        "slash_commands", command_payload("/oncall", "help", response_url=slack.response_url())
    )
    assert "/oncall" in slack.socket_ack(envelope)["payload"]["text"]
    assert metric(live, "opsbot_slack_socket_refused_total") == 1
    [line] = [r.getMessage() for r in caplog.records if "refused a message" in r.getMessage()]
    assert why in line and frame not in line
    if "envelope_id" in frame and why != "deep":
        assert "envelope e" in line  # the id, when it is one
    for bad in ("e1", "e2", "e3"):
        assert not slack.socket_acked(bad)
    assert slack.socket_accepted == 1  # the same connection all along


def test_an_event_over_the_socket_is_answered_once_though_slack_sends_it_again(
    live: LiveService, slack: SlackEmulator
) -> None:
    slack.socket_wait_connected()
    text = "<@U0OPSBOT> who is on call?"
    asked = slack.add_message(channel="C0ALERTS", text=text, user="U0BOB")
    mention = {
        "type": "app_mention",
        "user": "U0BOB",
        "text": text,
        "ts": asked.ts,
        "channel": "C0ALERTS",
    }
    body = json.loads(event_callback(mention, event_id="Ev0SOCKET1"))
    first = slack.socket_send("events_api", body)
    assert "payload" not in slack.socket_ack(first)
    [answer] = wait_for(lambda: slack.thread("C0ALERTS", mention["ts"]))
    again = slack.socket_send("events_api", body, retry_attempt=1, retry_reason="timeout")
    slack.socket_ack(again)
    wait_for(lambda: outbox_idle(live))
    assert slack.thread("C0ALERTS", mention["ts"]) == [answer]


@pytest.mark.parametrize(
    ("value", "why"),
    [("FAKE-bot-token-not-an-app-token", "app-level token (xapp-"), ("  ", "is set but empty")],
)
def test_an_app_token_that_is_none_is_refused(value: str, why: str) -> None:
    with pytest.raises(ValueError, match=re.escape(why)):
        Settings(slack_bot_token="xoxb-1", slack_app_token=value)
    assert Settings(slack_bot_token="xoxb-1", slack_app_token="xapp-1-A").slack_socket_mode
    assert not Settings(slack_app_token="xapp-1-A").slack_inbound_enabled  # no bot token
