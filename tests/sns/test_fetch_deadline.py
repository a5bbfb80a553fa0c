"""The fetch's deadline covers the whole GET, against hosts that answer slowly or not at all."""

from __future__ import annotations

import gzip
import os
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from bot.sns.fetch import MAX_BYTES, FetchFailed, make_fetch
from sandbox.tls import TestCA

DEADLINE_S = 0.5
TRICKLE_EVERY_S = 0.1  # well within the fetch's per-read timeout (DEADLINE_S)
TRICKLE_BYTES = 600  # 60 s at TRICKLE_EVERY_S
GIVEN_UP_WITHIN_S = 30.0  # far below the trickle's 60 s, far above the deadline
CLEANUP_WITHIN_S = 30.0


def _trickled(part: str) -> tuple[bytes, bytes]:
    """An answer that sends `part` ("head" or "body") a byte at a time: (sent at once, trickled)."""
    if part == "head":
        padding = TRICKLE_BYTES - len(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Pad: \r\n\r\n")
        return b"", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Pad: " + b"a" * padding + (
            b"\r\n\r\nhello"
        )
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % TRICKLE_BYTES
    return head, b"-" * TRICKLE_BYTES


class OneConnectionHost:
    """A loopback host that takes one connection and hands it to `serve`, optionally over TLS.

    `serve` returns when the client has gone (a send fails, or a read sees the end).
    """

    def __init__(self, serve: Callable[[socket.socket], None], tls: ssl.SSLContext | None) -> None:
        self._serve = serve
        self._tls = tls
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, name="one-connection-host", daemon=True)

    def url(self, path: str) -> str:
        scheme = "http" if self._tls is None else "https"
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def _run(self) -> None:
        self._listener.settimeout(CLEANUP_WITHIN_S)
        conn, _ = self._listener.accept()
        conn.settimeout(CLEANUP_WITHIN_S)
        try:
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            self._serve(conn)
        except OSError:  # the client went away
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self._listener.close()
        self.thread.join(CLEANUP_WITHIN_S)


def trickle(part: str) -> Callable[[socket.socket], None]:
    at_once, trickled = _trickled(part)

    def serve(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(at_once)
        for byte in trickled:
            conn.sendall(bytes([byte]))
            time.sleep(TRICKLE_EVERY_S)

    return serve


def silent(conn: socket.socket) -> None:
    """Reads whatever the client sends and never answers, until the client goes."""
    while conn.recv(4096):
        pass


def _sockets_open() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd listing itself, closed already
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.fixture
def nothing_left_behind() -> Iterator[None]:
    """Fails the test if a thread or a socket it started outlives it (given time to end)."""
    threads = set(threading.enumerate())
    sockets = _sockets_open()
    yield
    give_up_at = time.monotonic() + CLEANUP_WITHIN_S
    while time.monotonic() < give_up_at:
        if set(threading.enumerate()) <= threads and _sockets_open() <= sockets:
            break
        time.sleep(0.05)
    assert [t.name for t in set(threading.enumerate()) - threads] == []
    assert _sockets_open() - sockets == set()


@contextmanager
def serving(
    serve: Callable[[socket.socket], None], tls: ssl.SSLContext | None
) -> Iterator[OneConnectionHost]:
    host = OneConnectionHost(serve, tls)
    host.thread.start()
    try:
        yield host
    finally:
        host.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("part", ["head", "body"])
def test_a_trickled_answer_is_given_up_on_at_the_deadline(
    nothing_left_behind: None, test_ca: TestCA, scheme: str, part: str
) -> None:
    tls = test_ca.server_context() if scheme == "https" else None
    with serving(trickle(part), tls) as host:
        fetch = make_fetch(test_ca.client_context(), timeout_s=DEADLINE_S)
        started = time.monotonic()
        with pytest.raises(FetchFailed) as failure:
            fetch(host.url("/x.pem"))
        took_s = time.monotonic() - started
        assert str(failure.value) == "GET took too long"
        assert failure.value.transient
        assert took_s < GIVEN_UP_WITHIN_S


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_host_that_never_answers_is_given_up_on_at_the_deadline(
    nothing_left_behind: None, test_ca: TestCA, scheme: str
) -> None:
    # Over https the TLS handshake is what never ends; over http, the wait for the head.
    with serving(silent, None) as host:
        fetch = make_fetch(test_ca.client_context(), timeout_s=DEADLINE_S)
        url = host.url("/x.pem").replace("http:", f"{scheme}:", 1)
        started = time.monotonic()
        with pytest.raises(FetchFailed) as failure:
            fetch(url)
        assert failure.value.transient
        assert time.monotonic() - started < GIVEN_UP_WITHIN_S


def test_a_fetch_within_its_deadline_returns_the_body(
    nothing_left_behind: None, test_ca: TestCA
) -> None:
    def answer(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")

    with serving(answer, test_ca.server_context()) as host:
        assert make_fetch(test_ca.client_context(), timeout_s=30)(host.url("/x.pem")) == b"hello"


def test_a_compressed_answer_is_refused_before_it_can_grow_past_the_cap(
    nothing_left_behind: None, test_ca: TestCA
) -> None:
    # 60 KiB on the wire, within the cap; 60 MiB once inflated. The GET asks for the
    # body as is, and a host that compresses it all the same is refused: decoded, it
    # was in memory in full before the cap was checked.
    inflated = 60 * 1024 * 1024
    compressed = gzip.compress(bytes(inflated))
    assert len(compressed) < MAX_BYTES
    asked: list[bytes] = []

    def answer(conn: socket.socket) -> None:
        asked.append(conn.recv(4096))
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(compressed)
            + compressed
        )

    with serving(answer, None) as host:
        tracemalloc.start()
        try:
            with pytest.raises(FetchFailed) as failure:
                make_fetch(test_ca.client_context(), timeout_s=30)(host.url("/x.pem"))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert not failure.value.transient
    # The client's own few hundred KiB; an answer decoded as it came held MiBs.
    assert peak < 16 * MAX_BYTES
    assert b"\r\naccept-encoding: identity\r\n" in asked[0].lower()
