"""Slack Web API clients, and the answers posted to response_urls."""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx2
from slack_sdk import WebClient


def web_client(
    *, token: str | None, base_url: str, tls: ssl.SSLContext, timeout_s: float, retries: bool
) -> WebClient:
    """A WebClient; the outbox's has no retry handlers because the outbox owns retries."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    client = WebClient(token=token, base_url=base, ssl=tls, timeout=int(max(1, timeout_s)))
    if not retries:
        client.retry_handlers = []
    return client


@dataclass(frozen=True)
class Answered:
    """What a response_url said to an answer."""

    status_code: int
    headers: Mapping[str, str]
    body: str


class ResponseUrls:
    """Posts answers to response_urls over kept-alive connections, one pool for the process.

    slack_sdk's WebhookClient opens a connection, and a TLS session, for every
    answer; these all go to one host, so this keeps a few open instead (httpx2,
    the PagerDuty client's HTTP stack, already loaded). A failure before the
    request could leave raises ConnectionRefusedError (nothing reached Slack:
    send again at once); any other raises OSError (Slack may have it).
    """

    def __init__(self, *, tls: ssl.SSLContext, timeout_s: float) -> None:
        self._client = httpx2.Client(verify=tls, timeout=timeout_s, follow_redirects=False)

    def post(self, url: str, body: Mapping[str, Any]) -> Answered:
        try:
            response = self._client.post(
                url,
                content=json.dumps(body).encode(),
                headers={"Content-Type": "application/json;charset=utf-8"},
            )
        except (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout) as exc:
            raise ConnectionRefusedError(
                f"response_url unreachable: {type(exc).__name__}"
            ) from None
        except httpx2.HTTPError as exc:
            raise OSError(f"response_url did not answer: {type(exc).__name__}") from None
        return Answered(response.status_code, response.headers, response.text)

    def close(self) -> None:
        self._client.close()
