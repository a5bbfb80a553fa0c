"""Small, bounded HTTPS GETs for certificates and subscription confirmations."""

from __future__ import annotations

import ssl
from collections.abc import Callable

import httpcore  # noqa: F401  # httpx imports it on a client's first use: 30 ms of the first alarm
import httpx

MAX_BYTES = 64 * 1024


class FetchFailed(Exception):
    pass


def make_fetch(tls: ssl.SSLContext, *, timeout_s: float = 5.0) -> Callable[[str], bytes]:
    def fetch(url: str) -> bytes:
        try:
            with httpx.Client(verify=tls, timeout=timeout_s, follow_redirects=False) as client:
                response = client.get(url)
        except httpx.HTTPError as exc:
            raise FetchFailed(f"GET failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise FetchFailed(f"GET answered {response.status_code}")
        if len(response.content) > MAX_BYTES:
            raise FetchFailed("response too large")
        return response.content

    return fetch
