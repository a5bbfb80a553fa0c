"""The Slack emulator's Socket Mode: its tokens, its one-use URLs and its RFC 6455 frames."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import struct
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from sandbox.slack import SlackEmulator
from sandbox.slack_socket import CLOSE, PING, PONG, TEXT, accept_key
from tests.support import wait_for


@pytest.fixture
def emulator() -> Iterator[SlackEmulator]:
    slack = SlackEmulator().start()
    yield slack
    slack.socket_stop()
    slack.stop()


def masked(opcode: int, data: bytes) -> bytes:
    """A client's frame: final, masked (RFC 6455 5.3)."""
    mask = os.urandom(4)
    length = len(data)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    else:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def read(sock: socket.socket) -> tuple[int, bytes]:
    first, second = sock.recv(2, socket.MSG_WAITALL)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", sock.recv(2, socket.MSG_WAITALL))
    return first & 0x0F, sock.recv(length, socket.MSG_WAITALL) if length else b""


def handshake(url: str) -> tuple[socket.socket, bytes]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.hostname}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = sock.recv(1)  # not a byte past the handshake: the hello frame follows
        if not chunk:
            break
        answer += chunk
    if answer.startswith(b"HTTP/1.1 101"):
        assert f"Sec-WebSocket-Accept: {accept_key(key)}".encode() in answer
    return sock, answer


def test_only_the_app_token_opens_a_connection_and_a_url_serves_once(
    emulator: SlackEmulator,
) -> None:
    bot = WebClient(token=emulator.token, base_url=emulator.api_url)
    with pytest.raises(SlackApiError):
        bot.apps_connections_open(app_token=emulator.token)  # a bot token: refused
    with pytest.raises(SlackApiError):
        WebClient(token=emulator.app_token, base_url=emulator.api_url).auth_test()
    url = bot.apps_connections_open(app_token=emulator.app_token)["url"]
    assert url.startswith("ws://127.0.0.1:")

    sock, answer = handshake(url)
    assert answer.startswith(b"HTTP/1.1 101")
    opcode, hello = read(sock)
    assert opcode == TEXT and json.loads(hello)["type"] == "hello"
    again, refused = handshake(url)
    assert refused.startswith(b"HTTP/1.1 400")  # a URL is good for one connection
    again.close()
    sock.close()


def test_frames_pings_acks_and_close(emulator: SlackEmulator) -> None:
    client = WebClient(token=emulator.token, base_url=emulator.api_url)
    sock, _ = handshake(client.apps_connections_open(app_token=emulator.app_token)["url"])
    read(sock)  # hello
    sock.sendall(masked(PING, b"are you there"))
    assert read(sock) == (PONG, b"are you there")

    payload = {"command": "/opsbot", "text": "x" * 300}  # a length in two bytes
    envelope_id = emulator.socket_send("slash_commands", payload)
    opcode, data = read(sock)
    envelope = json.loads(data)
    assert opcode == TEXT and envelope["payload"] == payload
    assert envelope["envelope_id"] == envelope_id and envelope["accepts_response_payload"]
    sock.sendall(masked(TEXT, b"not json"))  # ignored, logged
    ack = {"envelope_id": envelope_id, "payload": {"text": "hi"}}
    sock.sendall(masked(TEXT, json.dumps(ack).encode()))
    assert emulator.socket_ack(envelope_id) == ack

    sock.sendall(masked(CLOSE, struct.pack("!H", 1000)))
    assert read(sock)[0] == CLOSE
    sock.close()


def test_an_unmasked_frame_ends_the_connection(emulator: SlackEmulator) -> None:
    client = WebClient(token=emulator.token, base_url=emulator.api_url)
    sock, _ = handshake(client.apps_connections_open(app_token=emulator.app_token)["url"])
    read(sock)
    emulator.socket_wait_connected()
    sock.sendall(struct.pack("!BB", 0x80 | TEXT, 2) + b"{}")  # a client must mask
    wait_for(lambda: emulator.socket_links() == [])
    with contextlib.suppress(ConnectionResetError):  # closed with our bytes unread
        assert sock.recv(16) == b""
    sock.close()
