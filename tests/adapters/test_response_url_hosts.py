"""A person's answer goes only to a response_url on Slack's hooks host: one anywhere else
(a metadata address, a service inside the network) is never contacted, and the answer
is dead at once, its URL in no log line."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.adapters.slack import Hooks, ResponseUrls
from bot.outbox.models import SLACK_RESPONSE
from bot.outbox.results import Dead, Job, Sent
from bot.outbox.service import SLACK_RESPONSE_TARGET
from bot.outbox.slack_sender import SlackSender
from tests.support import RecordingServer

SLACK = Hooks.of("https://slack.com/api/")


@pytest.fixture
def listener() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.stop()


def _send(hooks: Hooks, url: str) -> object:
    answers = ResponseUrls(tls=ssl.create_default_context(), timeout_s=5, hooks=hooks)
    try:
        # Answers need no token and no Web API: the client is never called here.
        sender = SlackSender(
            WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/"), answers.post
        )
        payload = {"response_url": url, "body": {"response_type": "ephemeral", "text": "secret"}}
        return sender.send(
            Job(1, SLACK_RESPONSE, SLACK_RESPONSE_TARGET, payload, attempts=1, message=None)
        )
    finally:
        answers.close()


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.slack.com/commands/T0/1/AbC",
        "https://hooks.slack.com/actions/T0/2/AbC",
        "https://HOOKS.slack.com/commands/T0/1/AbC",
    ],
)
def test_slacks_hooks_host_holds_its_response_urls(url: str) -> None:
    assert SLACK.holds(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.slack.com/commands/T0/1/AbC",  # not https
        "http://169.254.169.254/latest/meta-data/",
        "https://hooks.slack.com.example.com/commands/T0/1/AbC",
        "https://hooks.slack.com@example.com/commands/T0/1/AbC",
        "https://user:pw@hooks.slack.com/commands/T0/1/AbC",
        "https://hooks.slack.com\\@example.com/commands",
        "https://example.com/?to=https://hooks.slack.com/commands/T0/1/AbC",
        "https://hooks.slack.com/commands/T0/1/Ab C",
        "https://[::1/commands",
        "",
    ],
)
def test_anything_else_is_not_a_response_url(url: str) -> None:
    assert not SLACK.holds(url)


def test_another_api_base_takes_response_urls_on_its_own_host() -> None:
    emulator = Hooks.of("http://127.0.0.1:8123/api/")
    assert emulator.holds("http://127.0.0.1:8123/response/abc")
    assert not emulator.holds("https://hooks.slack.com/commands/T0/1/AbC")
    assert not emulator.holds("http://localhost:8123/response/abc")
    assert Hooks.of("https://slack-gov.com/api/").holds(
        "https://hooks.slack-gov.com/commands/T/1/x"
    )


def test_an_answer_to_a_foreign_url_is_never_sent_and_is_dead(
    listener: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = f"{listener.url}/latest/meta-data/capability"
    with caplog.at_level(logging.DEBUG):
        result = _send(SLACK, foreign)

    assert listener.requests == []
    assert isinstance(result, Dead)
    assert "hooks.slack.com" in result.error and "capability" not in result.error
    assert (
        "capability" not in caplog.text
        and str(listener.server.server_address[1]) not in caplog.text
    )
    assert "not sent" in caplog.text


def test_an_answer_on_the_configured_host_is_sent(listener: RecordingServer) -> None:
    result = _send(Hooks.of(f"{listener.url}/api/"), f"{listener.url}/commands/T0/1/AbC")

    assert result == Sent()
    assert [path for _, path, _, _ in listener.requests] == ["/commands/T0/1/AbC"]


@pytest.mark.parametrize("api", ["https://www.slack.com/api/", "https://slack.com./api/"])
def test_slacks_api_under_another_spelling_still_takes_its_hooks_host(api: str) -> None:
    assert Hooks.of(api).holds("https://hooks.slack.com/commands/T0/1/AbC")
