"""Answers through response_urls: sent over kept-alive connections, and what each
failure makes of the delivery (sent again at once, after its lease, or after Retry-After)."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Iterator

import pytest
from slack_sdk import WebClient

from bot.adapters.slack import Hooks, ResponseUrls
from bot.outbox.models import SLACK_RESPONSE
from bot.outbox.results import Job, Retry, Sent
from bot.outbox.service import SLACK_RESPONSE_TARGET
from bot.outbox.slack_sender import SlackSender
from sandbox.server import free_port
from tests.support import RecordingServer


@pytest.fixture
def answers() -> Iterator[ResponseUrls]:
    urls = ResponseUrls(
        tls=ssl.create_default_context(), timeout_s=0.5, hooks=Hooks.of("http://127.0.0.1/api/")
    )
    yield urls
    urls.close()


def _sender(answers: ResponseUrls) -> SlackSender:
    # Answers need no token and no Web API: the client is never called here.
    return SlackSender(WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/"), answers.post)


def _answer(url: str, text: str) -> Job:
    payload = {"response_url": url, "body": {"response_type": "ephemeral", "text": text}}
    return Job(1, SLACK_RESPONSE, SLACK_RESPONSE_TARGET, payload, attempts=1, message=None)


def test_answers_to_one_host_share_a_kept_alive_connection(answers: ResponseUrls) -> None:
    hooks = RecordingServer()
    try:
        results = [
            _sender(answers).send(_answer(f"{hooks.url}/commands/{n}", f"a{n}")) for n in range(3)
        ]
    finally:
        hooks.stop()

    assert results == [Sent(), Sent(), Sent()]
    assert [json.loads(body)["text"] for _, _, body, _ in hooks.requests] == ["a0", "a1", "a2"]
    assert len(hooks.client_ports) == 1


def test_an_answer_no_one_could_take_is_sent_again_without_waiting(
    answers: ResponseUrls,
) -> None:
    nobody = f"http://127.0.0.1:{free_port()}/commands/1"

    result = _sender(answers).send(_answer(nobody, "hello"))

    assert isinstance(result, Retry)
    assert not result.ambiguous


def test_an_answer_that_got_no_reply_waits_out_its_lease(answers: ResponseUrls) -> None:
    with socket.socket() as silent:  # takes the connection, never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/commands/1"

        result = _sender(answers).send(_answer(url, "hello"))

    assert isinstance(result, Retry)
    assert result.ambiguous


def test_a_429_holds_the_answers_for_its_retry_after(answers: ResponseUrls) -> None:
    hooks = RecordingServer(status=429, headers={"Retry-After": "7"})
    try:
        result = _sender(answers).send(_answer(f"{hooks.url}/commands/1", "hello"))
    finally:
        hooks.stop()

    assert isinstance(result, Retry)
    assert (result.after_s, result.pause_target_s) == (7.0, 7.0)
