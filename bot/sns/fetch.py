"""Small, bounded HTTPS GETs for certificates and subscription confirmations."""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable
from typing import Any

# httpx2 is the PagerDuty client's own HTTP stack: sharing it keeps a second one (httpx,
# httpcore) out of memory. It imports httpcore2 on a client's first use: 30 ms of the
# first alarm, so here at start instead.
import httpcore2  # noqa: F401
import httpx2

from bot.sns.envelope import for_log

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024


class FetchFailed(Exception):
    """The GET did not return a usable answer; `transient` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def make_fetch(
    tls: ssl.SSLContext, *, timeout_s: float = 3.0, trust_env: bool = True
) -> Callable[[str], bytes]:
    """A GET that gives up after `timeout_s` in all: name lookup, connection, TLS, head and body.

    The body is asked for uncompressed and read as sent, at most MAX_BYTES of it.

    httpx2's timeout bounds each network operation, not the whole request, and nothing
    bounds the name lookup; so the GET runs on a thread of its own that the caller
    waits for at most `timeout_s` (see `_Get`).
    Without `trust_env`, proxy variables (HTTPS_PROXY...) are ignored.
    """

    def fetch(url: str) -> bytes:
        get = _Get(url, tls, timeout_s=timeout_s, trust_env=trust_env)
        # A daemon: a name lookup left running never holds up the process's exit.
        worker = threading.Thread(target=get.run, name="bounded-fetch", daemon=True)
        try:
            worker.start()
        except RuntimeError:  # no thread to be had: ours to fix, not the host's answer
            raise FetchFailed("no thread to run the GET", transient=True) from None
        worker.join(timeout_s)
        if worker.is_alive():
            phase = get.cut_off()
            log.warning("GET %s cut off after %.1f s, at %s", for_log(url), timeout_s, phase)
            raise FetchFailed("GET took too long", transient=True)
        return get.outcome()

    return fetch


class _Get:
    """One GET, run by `run` on its own thread, which another thread may cut off.

    Cutting off shuts the GET's socket down, which at once ends a read or write blocked
    on it; the GET's own thread then fails and closes the socket as any failed GET does.
    A GET still in its name lookup, connection or TLS handshake cannot be reached that
    way: the socket it ends up with is shut down as soon as it has it, and its thread
    ends once the resolver, or httpx2's per-step timeout (`timeout_s`), lets it go.
    """

    def __init__(self, url: str, tls: ssl.SSLContext, *, timeout_s: float, trust_env: bool) -> None:
        self.url = url
        self.tls = tls
        self.timeout_s = timeout_s
        self.trust_env = trust_env
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._cut_off = False
        self._phase = "the start"
        self._body: bytes | None = None
        self._failure: Exception | None = None

    def run(self) -> None:
        try:
            self._body = self._get()
        except httpx2.HTTPError as exc:
            self._failure = FetchFailed(f"GET failed: {type(exc).__name__}", transient=True)
        except Exception as exc:  # the caller raises it, on its own thread
            self._failure = exc

    def outcome(self) -> bytes:
        """The body, or the GET's failure raised; once `run` has returned."""
        if self._failure is not None:
            raise self._failure
        assert self._body is not None
        return self._body

    def cut_off(self) -> str:
        """Ends the GET's network operations; returns the step it had reached, for the log."""
        with self._lock:
            self._cut_off = True
            sockets = list(self._sockets)
            phase = self._phase
        for sock in sockets:
            _shut_down(sock)
        return phase

    def _get(self) -> bytes:
        with (
            httpx2.Client(
                verify=self.tls,
                timeout=self.timeout_s,
                follow_redirects=False,
                trust_env=self.trust_env,
            ) as client,
            client.stream(
                "GET",
                self.url,
                headers={"Accept-Encoding": "identity"},
                extensions={"trace": self._trace},
            ) as response,
        ):
            if response.status_code != 200:
                raise FetchFailed(
                    f"GET answered {response.status_code}",
                    transient=response.status_code == 429 or response.status_code >= 500,
                )
            # Bytes as sent, counted as they come: a compressed answer, decoded, could
            # grow past the limit many times over in one chunk before it was counted.
            encoding = response.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchFailed(
                    f"GET answered in Content-Encoding {for_log(encoding, limit=40)},"
                    " not as asked (identity)",
                    transient=False,
                )
            body = bytearray()
            for chunk in response.iter_raw():
                body += chunk
                if len(body) > MAX_BYTES:
                    raise FetchFailed("response too large", transient=False)
            return bytes(body)

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        # httpcore2 names each step as it starts and ends, and hands over each stream it
        # opens (TCP, then TLS over it): the socket under the newest is the one in use.
        sock = None
        if event.endswith(("connect_tcp.complete", "start_tls.complete")):
            sock = info["return_value"].get_extra_info("socket")
        with self._lock:
            self._phase = event
            if sock is not None:
                self._sockets.append(sock)
            cut_off = self._cut_off
        if cut_off and sock is not None:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    # socket.socket's shutdown, not SSLSocket's: that one also drops the TLS state that
    # the GET's thread may be reading with at this moment.
    # OSError: not connected, or closed already, so nothing is left to end.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
