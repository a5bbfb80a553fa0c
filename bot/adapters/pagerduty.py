"""PagerDuty clients (the `pagerduty` package, successor of pdpyras)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

import pagerduty
from pydantic import SecretStr

# The client's own retries sleep inside the sending thread; the outbox retries
# instead, so the Events client tries once more on a 429 after a short pause and
# then hands the answer back (the REST client, at once: see `rest_client`).
RETRY_429_ONCE = {429: 1}
SHORT_PAUSE_S = 0.1


def events_client(
    routing_key: str, *, base_url: str, tls: ssl.SSLContext, timeout_s: float
) -> pagerduty.EventsApiV2Client:
    client = pagerduty.EventsApiV2Client(routing_key, base_url=base_url, verify=tls)
    client.retry = dict(RETRY_429_ONCE)
    client.max_network_attempts = 0
    client.sleep_timer = SHORT_PAUSE_S
    client.timeout = timeout_s  # type: ignore[assignment]  # httpx2 takes float seconds
    return client


def events_clients(
    *,
    secret_for: Callable[[str], SecretStr | None],
    base_url: str,
    tls: ssl.SSLContext,
    timeout_s: float,
) -> Callable[[str], pagerduty.EventsApiV2Client | None]:
    """A lookup from a routing key's variable name to a client, made once per key."""
    cache: dict[str, pagerduty.EventsApiV2Client] = {}
    lock = threading.Lock()

    def client_for(env_name: str) -> pagerduty.EventsApiV2Client | None:
        secret = secret_for(env_name)
        if secret is None:
            return None
        with lock:
            client = cache.get(env_name)
            if client is None:
                client = events_client(
                    secret.get_secret_value(), base_url=base_url, tls=tls, timeout_s=timeout_s
                )
                cache[env_name] = client
            return client

    return client_for


def rest_client(
    token: str,
    *,
    base_url: str,
    tls: ssl.SSLContext,
    timeout_s: float,
    default_from: str | None,
    network_retries: int = 1,
) -> pagerduty.RestApiV2Client:
    client = pagerduty.RestApiV2Client(
        token, default_from=default_from, base_url=base_url, verify=tls
    )
    # A 429 goes back at once: the outbox holds the token's lane for as long as
    # PagerDuty asked, where a resend 0.1 s later only spends more of its limit. The
    # client retries a 429 without end unless `retry` names it, and then until over
    # `max_http_attempts` retries in all, which at -1 the first 429 already is.
    client.retry = {429: 1}
    client.max_http_attempts = -1
    client.max_network_attempts = network_retries
    client.sleep_timer = SHORT_PAUSE_S
    client.timeout = timeout_s  # type: ignore[assignment]  # httpx2 takes float seconds
    return client
