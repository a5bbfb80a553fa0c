"""The load generator's HTTP/1.1 client against a server that answers in each way it may."""

from __future__ import annotations

import asyncio

import pytest

from bench.http1 import Connection, HttpError

ANSWERS = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst",
    b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nsec\r\n3;x=1\r\nond\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nlast",
]


async def serve(seen: list[bytes]) -> asyncio.Server:
    answers = iter(ANSWERS)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            seen.append(head + await reader.readexactly(length))
            answer = next(answers)
            writer.write(answer)
            await writer.drain()
            if b"Connection: close" in answer:
                break
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_keep_alive_chunked_and_close() -> None:
    async def run() -> tuple[list[tuple[int, bytes]], list[bytes]]:
        seen: list[bytes] = []
        server = await serve(seen)
        port = server.sockets[0].getsockname()[1]
        connection = Connection(f"http://127.0.0.1:{port}")
        answers = [
            await connection.post("/a", b"one", {"X-Test": "1"}),
            await connection.post("/b", b"two", {}),
            await connection.post("/c", b"three", {}),
        ]
        await connection.close()
        server.close()
        await server.wait_closed()
        return answers, seen

    answers, seen = asyncio.run(run())

    assert answers == [(200, b"first"), (503, b"second"), (200, b"last")]
    assert seen[0].startswith(b"POST /a HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nX-Test: 1\r\nContent-Length: 3\r\n\r\none" in seen[0]
    assert [s.split(b"\r\n\r\n", 1)[1] for s in seen] == [b"one", b"two", b"three"]


def test_a_refused_connection_is_an_http_error() -> None:
    async def run() -> None:
        server = await asyncio.start_server(lambda _r, _w: None, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        await Connection(f"http://127.0.0.1:{port}").post("/", b"", {})

    with pytest.raises(HttpError, match="ConnectionRefusedError"):
        asyncio.run(run())
