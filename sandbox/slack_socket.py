"""Socket Mode for the Slack emulator: apps.connections.open and a loopback websocket.

In Socket Mode an app calls apps.connections.open with its app-level token
(xapp-…) and connects to the URL it gets; Slack then sends every command, click
and event as an envelope ({"envelope_id", "type": slash_commands | interactive |
events_api, "payload"}) and waits for an acknowledgement naming its
envelope_id (with a "payload" a command's answer). Slack may close a connection
at any time ("disconnect" message, or just dropped); the app opens a new one.

Here the websocket is a minimal RFC 6455 server on loopback, in threads like the
emulator's HTTP server: the opening handshake, text, ping/pong and close frames;
no extensions, no fragmented messages (Slack sends neither), frames bounded.
Tests drive it: `socket_send` an envelope, `socket_ack` its acknowledgement,
`socket_drop` the connections.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

APP_TOKEN = "xapp-1-sandbox"  # noqa: S105  # the emulator's own fake app-level token
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA
MAX_FRAME = 1 << 20  # an app's acknowledgement is small; more is a broken client


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a client's Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()  # noqa: S324


def frame(opcode: int, data: bytes) -> bytes:
    """One unmasked, final frame (a server's frames are never masked)."""
    length = len(data)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + data


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> tuple[int, bytes]:
    """(opcode, payload) of the next frame from a client (masked, as RFC 6455 requires)."""
    first, second = _read_exactly(sock, 2)
    opcode, masked, length = first & 0x0F, second & 0x80, second & 0x7F
    if not first & 0x80 or not masked:
        raise ConnectionError("fragmented or unmasked frame")
    if length == 126:
        (length,) = struct.unpack("!H", _read_exactly(sock, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", _read_exactly(sock, 8))
    if length > MAX_FRAME:
        raise ConnectionError("frame too large")
    mask = _read_exactly(sock, 4)
    data = _read_exactly(sock, length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@dataclass
class SocketLink:
    """One app connection."""

    sock: socket.socket
    ticket: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    open: bool = True

    def send(self, opcode: int, data: bytes) -> None:
        with self.lock:
            self.sock.sendall(frame(opcode, data))

    def drop(self) -> None:
        """Gone without a close frame, as a network fault or a restarted Slack host does."""
        self.open = False
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@dataclass
class SocketState:
    listener: socket.socket | None = None
    tickets: set[str] = field(default_factory=set)
    links: list[SocketLink] = field(default_factory=list)
    accepted: int = 0  # connections that completed the handshake, ever
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)  # by envelope_id
    refused_handshakes: int = 0
    changed: threading.Condition = field(default_factory=threading.Condition)


class SlackSocketMixin:
    """apps.connections.open and the websocket behind it (SlackEmulator inherits this)."""

    token: str
    app_token: str = APP_TOKEN

    @property
    def _socket(self) -> SocketState:
        state = self.__dict__.get("_socket_state")
        if state is None:
            state = self.__dict__.setdefault("_socket_state", SocketState())
        return state  # type: ignore[no-any-return]

    def accepts_token(self, method: str, token: str) -> bool:
        """apps.connections.open takes the app-level token only; every other method the bot's."""
        return token == (self.app_token if method == "apps.connections.open" else self.token)

    def api_apps_connections_open(self, _args: dict[str, Any]) -> dict[str, Any]:
        state = self._socket
        with state.changed:
            if state.listener is None:
                listener = socket.create_server(("127.0.0.1", 0))
                state.listener = listener
                threading.Thread(
                    target=self._accept_loop, args=(listener,), name="slack-socket", daemon=True
                ).start()
            ticket = uuid.uuid4().hex
            state.tickets.add(ticket)
            port = state.listener.getsockname()[1]
        return {"ok": True, "url": f"ws://127.0.0.1:{port}/link/?ticket={ticket}"}

    # -- what tests do -----------------------------------------------------------

    @property
    def socket_accepted(self) -> int:
        """How many connections opened, ever (reconnects included)."""
        return self._socket.accepted

    def socket_links(self) -> list[SocketLink]:
        with self._socket.changed:
            return [link for link in self._socket.links if link.open]

    def socket_wait_connected(self, *, accepted: int = 1, timeout_s: float = 60.0) -> SocketLink:
        """The newest open connection, once `accepted` connections were ever made."""
        state = self._socket
        deadline = time.monotonic() + timeout_s
        with state.changed:
            while state.accepted < accepted or not any(link.open for link in state.links):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no Socket Mode connection ({state.accepted} accepted)")
                state.changed.wait(left)
            return [link for link in state.links if link.open][-1]

    def socket_send_raw(self, text: str) -> None:
        """A text frame on the newest connection, as it is."""
        self.socket_wait_connected().send(TEXT, text.encode())

    def socket_send(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        retry_attempt: int | None = None,
        retry_reason: str | None = None,
    ) -> str:
        """Send an envelope (slash_commands, interactive, events_api); its envelope_id."""
        envelope_id = str(uuid.uuid4())
        envelope: dict[str, Any] = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
        }
        if retry_attempt is not None:
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason or ""
        self.socket_send_raw(json.dumps(envelope))
        return envelope_id

    def socket_ack(self, envelope_id: str, *, timeout_s: float = 60.0) -> dict[str, Any]:
        """The app's acknowledgement of an envelope, once it came."""
        state = self._socket
        deadline = time.monotonic() + timeout_s
        with state.changed:
            while envelope_id not in state.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} was not acknowledged")
                state.changed.wait(left)
            return state.acks[envelope_id]

    def socket_acked(self, envelope_id: str) -> bool:
        with self._socket.changed:
            return envelope_id in self._socket.acks

    def socket_drop(self) -> int:
        """Drop every open connection without a word; how many there were."""
        links = self.socket_links()
        for link in links:
            link.drop()
        with self._socket.changed:
            self._socket.changed.notify_all()
        return len(links)

    def socket_stop(self) -> None:
        state = self._socket
        self.socket_drop()
        with state.changed:
            listener, state.listener = state.listener, None
        if listener is not None:
            listener.close()

    # -- the server --------------------------------------------------------------

    def _accept_loop(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _address = listener.accept()
            except OSError:
                return  # closed by socket_stop
            threading.Thread(
                target=self._serve, args=(sock,), name="slack-socket-link", daemon=True
            ).start()

    def _handshake(self, sock: socket.socket) -> SocketLink | None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = sock.recv(4096)
            if not chunk or len(request) > 16384:
                return None
            request += chunk
        lines = request.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1] if len(lines[0].split(" ")) == 3 else ""
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:])
        }
        ticket = target.partition("ticket=")[2]
        state = self._socket
        with state.changed:
            known = ticket in state.tickets
            state.tickets.discard(ticket)  # a URL is good for one connection
        key = headers.get("sec-websocket-key")
        if not known or not key or headers.get("upgrade", "").lower() != "websocket":
            state.refused_handshakes += 1
            sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return None
        sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept_key(key)}\r\n\r\n"
            ).encode()
        )
        return SocketLink(sock=sock, ticket=ticket)

    def _serve(self, sock: socket.socket) -> None:
        state = self._socket
        try:
            link = self._handshake(sock)
        except OSError:
            link = None
        if link is None:
            sock.close()
            return
        hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0OPS"}}
        link.send(TEXT, json.dumps(hello).encode())
        with state.changed:
            state.links.append(link)
            state.accepted += 1
            state.changed.notify_all()
        try:
            while link.open:
                opcode, data = read_frame(sock)
                if opcode == PING:
                    link.send(PONG, data)
                elif opcode == TEXT:
                    self._acknowledged(data)
                elif opcode == CLOSE:
                    link.send(CLOSE, data[:2])
                    break
        except (OSError, ConnectionError):
            pass
        finally:
            link.open = False
            sock.close()
            with state.changed:
                state.changed.notify_all()

    def _acknowledged(self, data: bytes) -> None:
        try:
            ack = json.loads(data)
        except ValueError:
            log.warning("Socket Mode: the app sent a frame that is not JSON")
            return
        envelope_id = ack.get("envelope_id") if isinstance(ack, dict) else None
        if not isinstance(envelope_id, str):
            log.warning("Socket Mode: the app sent a message without an envelope_id")
            return
        with self._socket.changed:
            self._socket.acks[envelope_id] = ack
            self._socket.changed.notify_all()
