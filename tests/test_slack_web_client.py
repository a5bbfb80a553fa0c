"""The Web API client: slack_sdk's WebClient over kept-alive connections, and what
each failure makes of an outbox delivery (sent again at once, after its lease, or
after Retry-After)."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs

import pytest
from slack_sdk.errors import SlackApiError

from bot.adapters.slack import KeptAliveWebClient, web_client
from bot.outbox.models import SLACK_MESSAGE
from bot.outbox.results import Job, MessageRef, Retry, Sent
from bot.outbox.slack_sender import SlackSender
from sandbox.server import free_port
from tests.support import RecordingServer

POSTED = json.dumps({"ok": True, "channel": "C0ALERTS", "ts": "1700000000.000100"}).encode()


def _client(url: str, *, retries: bool = False) -> KeptAliveWebClient:
    return web_client(
        token="xoxb-test",
        base_url=f"{url}/api",
        tls=ssl.create_default_context(),
        timeout_s=1,
        retries=retries,
    )


@pytest.fixture
def slack() -> Iterator[RecordingServer]:
    server = RecordingServer(headers={"Content-Type": "application/json"}, body=POSTED)
    yield server
    server.stop()


def _post(client: KeptAliveWebClient, text: str) -> Sent | Retry:
    def no_answers(url: str, body: object) -> None:
        raise AssertionError("no response_url here")

    job = Job(
        1, SLACK_MESSAGE, "slack:#alerts", {"text": text}, 1, MessageRef("k", "#alerts", None, None)
    )
    result = SlackSender(client, no_answers).send(job)  # type: ignore[arg-type]
    assert isinstance(result, Sent | Retry)
    return result


def _arguments(body: bytes, headers: dict[str, str]) -> dict[str, object]:
    if headers["content-type"].startswith("application/json"):
        return dict(json.loads(body))
    return {name: values[0] for name, values in parse_qs(body.decode()).items()}


def test_calls_to_slack_share_a_kept_alive_connection(slack: RecordingServer) -> None:
    client = _client(slack.url)
    try:
        results = [_post(client, f"m{n}") for n in range(3)]
        profile = client.users_info(user="U1")
    finally:
        client.close()

    assert results == [Sent(ts="1700000000.000100", channel_id="C0ALERTS")] * 3
    assert profile["ok"] is True
    sent = [(path, _arguments(body, headers)) for _, path, body, headers in slack.requests]
    assert [path for path, _ in sent] == ["/api/chat.postMessage"] * 3 + ["/api/users.info"]
    assert [arguments["text"] for _, arguments in sent[:3]] == ["m0", "m1", "m2"]
    assert sent[3][1]["user"] == "U1"
    assert {headers["authorization"] for *_, headers in slack.requests} == {"Bearer xoxb-test"}
    assert len(slack.client_ports) == 1


def test_an_error_status_is_slack_api_error_with_its_headers() -> None:
    limited = RecordingServer(
        status=429,
        headers={"Content-Type": "application/json", "Retry-After": "7"},
        body=json.dumps({"ok": False, "error": "ratelimited"}).encode(),
    )
    client = _client(limited.url)
    try:
        with pytest.raises(SlackApiError) as raised:
            client.chat_update(channel="C0ALERTS", ts="1.0", text="x")
        result = _post(client, "hello")
    finally:
        client.close()
        limited.stop()

    assert raised.value.response.status_code == 429
    assert raised.value.response["error"] == "ratelimited"
    assert raised.value.response.headers["Retry-After"] == "7"
    assert isinstance(result, Retry)
    assert (result.after_s, result.pause_target_s) == (7.0, 7.0)


def _post_once(url: str) -> Sent | Retry:
    client = _client(url)
    try:
        return _post(client, "hello")
    finally:
        client.close()


def test_a_post_no_one_could_take_is_sent_again_without_waiting() -> None:
    result = _post_once(f"http://127.0.0.1:{free_port()}")

    assert isinstance(result, Retry)
    assert not result.ambiguous


def test_a_post_that_got_no_reply_waits_out_its_lease() -> None:
    with socket.socket() as silent:  # takes the connection, never reads or answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        result = _post_once(f"http://127.0.0.1:{silent.getsockname()[1]}")

    assert isinstance(result, Retry)
    assert result.ambiguous


class HangUp:
    """Takes each connection and closes it without a word, counting them."""

    def __init__(self) -> None:
        self.taken = 0
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen()
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.taken += 1
            connection.close()

    def stop(self) -> None:
        self.socket.close()


def test_a_hang_up_is_retried_once_by_the_reading_client_and_waits_in_the_outbox() -> None:
    # The client that reads (users.info and the like) keeps slack_sdk's retry of a
    # broken connection; the outbox's client has none, and cannot know what Slack got.
    reader, hang_up = None, HangUp()
    try:
        reader = _client(hang_up.url, retries=True)
        with pytest.raises(OSError):
            reader.users_info(user="U1")
        taken_by_reader = hang_up.taken
        result = _post_once(hang_up.url)
    finally:
        if reader is not None:
            reader.close()
        hang_up.stop()

    assert taken_by_reader == 2
    assert isinstance(result, Retry)
    assert result.ambiguous
