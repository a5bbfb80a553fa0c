"""Answers through response_urls: sent over kept-alive connections, and what each
failure makes of the delivery (sent again at once, after its lease, or after Retry-After)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from slack_sdk import WebClient

from bot.adapters.slack import ResponseUrls
from bot.outbox.models import SLACK_RESPONSE
from bot.outbox.results import Job, Retry, Sent
from bot.outbox.service import SLACK_RESPONSE_TARGET
from bot.outbox.slack_sender import SlackSender
from sandbox.server import free_port


class Hooks:
    """A response_url host that records each answer and the client port it came from."""

    def __init__(self, *, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hooks.answers.append((self.client_address[1], json.loads(body)))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/commands"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def answers() -> Iterator[ResponseUrls]:
    urls = ResponseUrls(tls=ssl.create_default_context(), timeout_s=0.5)
    yield urls
    urls.close()


def _sender(answers: ResponseUrls) -> SlackSender:
    # Answers need no token and no Web API: the client is never called here.
    return SlackSender(WebClient(token="xoxb-unused", base_url="http://127.0.0.1:9/"), answers.post)


def _answer(url: str, text: str) -> Job:
    payload = {"response_url": url, "body": {"response_type": "ephemeral", "text": text}}
    return Job(1, SLACK_RESPONSE, SLACK_RESPONSE_TARGET, payload, attempts=1, message=None)


def test_answers_to_one_host_share_a_kept_alive_connection(answers: ResponseUrls) -> None:
    hooks = Hooks()
    try:
        results = [_sender(answers).send(_answer(f"{hooks.url}/{n}", f"a{n}")) for n in range(3)]
    finally:
        hooks.stop()

    assert results == [Sent(), Sent(), Sent()]
    assert [body["text"] for _, body in hooks.answers] == ["a0", "a1", "a2"]
    assert len({port for port, _ in hooks.answers}) == 1


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
    hooks = Hooks(status=429, headers={"Retry-After": "7"})
    try:
        result = _sender(answers).send(_answer(f"{hooks.url}/1", "hello"))
    finally:
        hooks.stop()

    assert isinstance(result, Retry)
    assert (result.after_s, result.pause_target_s) == (7.0, 7.0)
