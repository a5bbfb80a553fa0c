"""Small, bounded HTTPS GETs for certificates and subscription confirmations."""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable

# httpx2 is the PagerDuty client's own HTTP stack: sharing it keeps a second one (httpx,
# httpcore) out of memory. It imports httpcore2 on a client's first use: 30 ms of the
# first alarm, so here at start instead.
import httpcore2  # noqa: F401
import httpx2

MAX_BYTES = 64 * 1024


class FetchFailed(Exception):
    """The GET did not return a usable answer; `transient` says whether trying again may help."""

    def __init__(self, message: str, *, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


def make_fetch(
    tls: ssl.SSLContext, *, timeout_s: float = 3.0, trust_env: bool = True
) -> Callable[[str], bytes]:
    """A GET that gives up after about `timeout_s` in all (slow or endless answers included).

    httpx2's timeout bounds each network operation, not the whole request, so a
    server that trickles its answer is cut off by a deadline checked per chunk.
    Without `trust_env`, proxy variables (HTTPS_PROXY...) are ignored.
    """

    def fetch(url: str) -> bytes:
        deadline = time.monotonic() + timeout_s
        try:
            with (
                httpx2.Client(
                    verify=tls, timeout=timeout_s, follow_redirects=False, trust_env=trust_env
                ) as client,
                client.stream("GET", url) as response,
            ):
                if response.status_code != 200:
                    raise FetchFailed(
                        f"GET answered {response.status_code}",
                        transient=response.status_code == 429 or response.status_code >= 500,
                    )
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise FetchFailed("response too large", transient=False)
                    if time.monotonic() > deadline:
                        raise FetchFailed("GET took too long", transient=True)
                return bytes(body)
        except httpx2.HTTPError as exc:
            raise FetchFailed(f"GET failed: {type(exc).__name__}", transient=True) from None

    return fetch
