"""Stopping in Socket Mode: an envelope in hand is acknowledged before the websocket closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from bot.config import parse_config
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.socket_mode.test_socket_mode import command_payload
from tests.support import LiveService


@pytest.fixture
def socket_settings(settings: Settings, slack: SlackEmulator) -> Iterator[Settings]:
    yield settings.model_copy(
        update={
            "slack_app_token": SecretStr(slack.app_token),
            "slack_signing_secret": None,
            "slack_socket_ping_s": 0.2,
            "slack_socket_backoff_max_s": 1.0,
        }
    )
    slack.socket_stop()


def test_an_envelope_handled_when_the_server_stops_is_acknowledged_before_the_socket_closes(
    socket_settings: Settings, make_service: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    live = make_service(socket_settings, parse_config(TEST_CONFIG))
    slack.socket_wait_connected()
    # Bolt asks auth.test at its first request, before the listener acknowledges: Slack
    # slow to answer (within the client's timeout of a second) holds the envelope in hand
    # while the server stops.
    slack.faults.hang_next(3, seconds=0.8, calls=("auth.test",))
    envelope = slack.socket_send(
        "slash_commands", command_payload("/oncall", "help", response_url=slack.response_url())
    )
    time.sleep(0.3)  # the envelope reaches Bolt, which waits for auth.test
    assert not slack.socket_acked(envelope)

    stopping = threading.Thread(target=live.stop)
    started = time.monotonic()
    stopping.start()
    stopping.join(60)

    assert not stopping.is_alive()
    assert "/oncall" in slack.socket_ack(envelope, timeout_s=0)["payload"]["text"]
    assert time.monotonic() - started < socket_settings.slack_form_wait_s + 10
    assert slack.socket_links() == []  # and then the connection closed
