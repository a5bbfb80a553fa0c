"""Slack Web API clients."""

from __future__ import annotations

import ssl

from slack_sdk import WebClient
from slack_sdk.webhook import WebhookClient


def web_client(
    *, token: str | None, base_url: str, tls: ssl.SSLContext, timeout_s: float, retries: bool
) -> WebClient:
    """A WebClient; the outbox's has no retry handlers because the outbox owns retries."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    client = WebClient(token=token, base_url=base, ssl=tls, timeout=int(max(1, timeout_s)))
    if not retries:
        client.retry_handlers = []
    return client


def webhook_client(url: str, *, tls: ssl.SSLContext, timeout_s: float) -> WebhookClient:
    client = WebhookClient(url, ssl=tls, timeout=int(max(1, timeout_s)))
    client.retry_handlers = []
    return client
