"""What a hostile client does to the HTTP edge, on raw asyncio streams.

Used by the edge benchmark's load generator and by the tests of the edge
(tests/test_edge_limits.py): huge uploads that never sit in this process's
memory (one chunk, sent again and again), request heads and bodies left
half-sent. Each reports what the server answered and when it closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

CHUNK = b"x" * (64 * 1024)


@dataclass(frozen=True)
class Answer:
    """What came back on one connection."""

    status: int | None  # None: the connection ended without an answer
    head: bytes  # the status line and headers, as sent
    body: bytes
    sent: int  # body bytes written before the answer came (or the connection broke)
    closed: bool  # the server ended the connection after its answer

    def header(self, name: str) -> str | None:
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            key, _, value = line.partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


def request_head(
    path: str, host: str, headers: dict[str, str], *, length: int | None, method: str = "POST"
) -> bytes:
    """A request line and headers; `length` None means a chunked body."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int | None, bytes, bytes]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None, b"", b""
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    try:
        body = await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError):
        body = b""
    return status, head, body


async def _closed(reader: asyncio.StreamReader, timeout_s: float) -> bool:
    """Whether the server ends the connection within `timeout_s` (discarding what it sends)."""
    try:
        async with asyncio.timeout(timeout_s):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def upload(
    host: str,
    port: int,
    path: str,
    *,
    size: int,
    chunked: bool,
    headers: dict[str, str] | None = None,
    timeout_s: float = 60.0,
) -> Answer:
    """POST a body of `size` bytes, stopping as soon as the server answers."""
    reader, writer = await asyncio.open_connection(host, port)
    head = request_head(path, f"{host}:{port}", headers or {}, length=None if chunked else size)
    sent = 0

    async def send_body() -> None:
        nonlocal sent
        writer.write(head)
        while sent < size:
            piece = CHUNK[: min(len(CHUNK), size - sent)]
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            await writer.drain()
            sent += len(piece)
            await asyncio.sleep(0)  # drain() need not yield: let the answer be read
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    sending = asyncio.create_task(send_body())
    try:
        async with asyncio.timeout(timeout_s):
            status, answer_head, body = await _read_answer(reader)
        sending.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await sending
        # A kept-alive connection stays open: only an answer that closes it is waited out.
        closing = status is None or b"\r\nconnection: close\r\n" in answer_head.lower()
        closed = closing and await _closed(reader, timeout_s)
    finally:
        sending.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    return Answer(status=status, head=answer_head, body=body, sent=sent, closed=closed)


class HalfSent:
    """A request left half-sent on an open connection: the head, or the body, stops midway."""

    def __init__(
        self,
        host: str,
        port: int,
        path: str,
        *,
        in_body: bool,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.path = path
        self.in_body = in_body
        self.headers = headers or {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def start(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        head = request_head(self.path, f"{self.host}:{self.port}", self.headers, length=100_000)
        if self.in_body:
            self._writer.write(head + b'{"Type": "Notif')
        else:
            self._writer.write(head[: len(head) // 2])
        await self._writer.drain()

    async def dribble(self, data: bytes) -> None:
        """Send a few more bytes of what was left unsent (never enough to finish)."""
        assert self._writer is not None
        self._writer.write(data)
        await self._writer.drain()

    async def outcome(self, timeout_s: float) -> Answer:
        """What the server does about it within `timeout_s`: its answer, and whether it closed."""
        assert self._reader is not None
        try:
            async with asyncio.timeout(timeout_s):
                status, head, body = await _read_answer(self._reader)
        except TimeoutError:
            return Answer(status=None, head=b"", body=b"", sent=0, closed=False)
        closing = status is None or b"\r\nconnection: close\r\n" in head.lower()
        closed = closing and await _closed(self._reader, timeout_s)
        return Answer(status=status, head=head, body=body, sent=0, closed=closed)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
