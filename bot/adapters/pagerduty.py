"""PagerDuty clients (the `pagerduty` package, successor of pdpyras)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable

import httpx2
import pagerduty
from pydantic import SecretStr

# The client's own retries sleep inside the sending thread, and its last 429 is
# logged as an ERROR; the outbox retries instead, pausing the routing key's or the
# token's lane for as long as PagerDuty asked. So a 429 goes back to the caller as
# it arrives (`postprocess`, the client's hook after every answer), never resent,
# and so does a 5xx (`retry` emptied): the Events client's defaults send an event
# up to seven times against a 503, sleeping 12.6 s in all, in one of the
# outbox's senders and unseen by its pacing. The outbox's backoff is the only retry.
SHORT_PAUSE_S = 0.1


def _hand_back_429(response: httpx2.Response) -> None:
    if response.status_code == 429:
        raise pagerduty.HttpError("PagerDuty answered 429 (rate limit)", response)


class _EventsClient(pagerduty.EventsApiV2Client):
    def postprocess(self, response: httpx2.Response) -> None:
        super().postprocess(response)
        _hand_back_429(response)


class _RestClient(pagerduty.RestApiV2Client):
    def postprocess(self, response: httpx2.Response, suffix: str | None = None) -> None:
        super().postprocess(response, suffix)
        _hand_back_429(response)


def events_client(
    routing_key: str, *, base_url: str, tls: ssl.SSLContext, timeout_s: float
) -> pagerduty.EventsApiV2Client:
    client = _EventsClient(routing_key, base_url=base_url, verify=tls)
    client.max_network_attempts = 0
    client.retry = {}
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
    client = _RestClient(token, default_from=default_from, base_url=base_url, verify=tls)
    client.max_network_attempts = network_retries
    client.retry = {}  # as for events: a 5xx goes back to the caller
    client.sleep_timer = SHORT_PAUSE_S
    client.timeout = timeout_s  # type: ignore[assignment]  # httpx2 takes float seconds
    return client
