"""boto3 clients, pointed at AWS_ENDPOINT_URL when it is set (moto in tests and the sandbox)."""

from __future__ import annotations

import threading
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

ATTEMPTS = 3  # botocore's "standard" retry mode: the first try and two retries
CONNECT_TIMEOUT_S = 5.0
DEFAULT_READ_TIMEOUT_S = 60.0
# A synchronous Lambda invocation answers when the function ends: wait longer than the
# longest a function may run (15 minutes), or botocore's 60 s would give up on (and
# retry) a role manager that is still working.
READ_TIMEOUT_S = {"lambda": 905.0}
# The most botocore's standard mode waits before a retry: its backoff's cap (20 s) and
# the 5 s more it allows a Retry-After header.
RETRY_WAIT_MAX_S = 25.0


def client(
    service: str,
    *,
    region: str,
    endpoint_url: str | None,
    timeout_s: float | None = None,
    retry: bool = True,
    **kwargs: Any,
) -> Any:
    """A boto3 client; `timeout_s`: a quick look that tries once and waits at most that long.

    `retry=False`: each call is tried once, for a call that must not run twice (a retry
    after a lost answer would repeat what the first try did).
    """
    # boto3 (~20 MB) loads on the first AWS call: most deployments never make one.
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(
        # botocore's `max_attempts` counts retries only (it adds the first try); the
        # total is what ATTEMPTS and `longest_call_s` count.
        retries={
            "total_max_attempts": ATTEMPTS if retry and not timeout_s else 1,
            "mode": "standard",
        },
        connect_timeout=timeout_s or CONNECT_TIMEOUT_S,
        read_timeout=timeout_s or READ_TIMEOUT_S.get(service, DEFAULT_READ_TIMEOUT_S),
    )
    return boto3.client(
        service, region_name=region, endpoint_url=endpoint_url, config=config, **kwargs
    )


def longest_call_s(service: str) -> float:
    """The longest one call of a `client(service)` can take, retries and waits included.

    Each try may spend its connect and read timeouts (a read timeout bounds each wait
    for bytes, and AWS answers an API call in one short body).
    """
    read_s = READ_TIMEOUT_S.get(service, DEFAULT_READ_TIMEOUT_S)
    return ATTEMPTS * (CONNECT_TIMEOUT_S + read_s) + (ATTEMPTS - 1) * RETRY_WAIT_MAX_S


# How long one look at STS for the caller's account may take (tried once).
STS_LOOK_S = 5.0


class AwsClients:
    """One client per service, built on first use (boto3's default session is not
    thread-safe to build clients from; the clients themselves are)."""

    def __init__(self, *, region: str, endpoint_url: str | None) -> None:
        self.region = region
        self.endpoint_url = endpoint_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._account: str | None = None
        self._account_lock = threading.Lock()

    def get(self, service: str, *, timeout_s: float | None = None, retry: bool = True) -> Any:
        """The client of `service`; with `timeout_s`, a separate one for quick bounded looks,
        and with `retry=False` one that tries each call once (see `client`)."""
        key = f"{service}:{timeout_s}" if timeout_s else service
        if not retry:
            key += ":once"
        with self._lock:
            found = self._clients.get(key)
            if found is None:
                found = client(
                    service,
                    region=self.region,
                    endpoint_url=self.endpoint_url,
                    timeout_s=timeout_s,
                    retry=retry,
                )
                self._clients[key] = found
            return found

    def caller_account(self) -> str:
        """The account the clients' credentials are of (STS GetCallerIdentity, kept once
        known).

        Asked without holding the lock, once and briefly (`STS_LOOK_S`): while STS is
        slow, each request waiting for it fails on its own within seconds rather than
        queueing behind the others' full retries, and holds no worker for minutes.
        """
        with self._account_lock:
            if self._account is not None:
                return self._account
        sts = self.get("sts", timeout_s=STS_LOOK_S)
        account = str(sts.get_caller_identity()["Account"])
        with self._account_lock:
            self._account = account
        return account

    def elsewhere(self, *, account_id: str | None, region: str | None) -> str | None:
        """Why the clients do not reach `account_id` and `region` (None: they do, or unpinned).

        Plain text naming both sides; the account is asked of STS only when one is pinned.
        """
        if region is not None and region != self.region:
            return f"opsbot's AWS region is {self.region} (AWS_REGION), not {region} (aws.region)"
        if account_id is not None:
            actual = self.caller_account()
            if actual != account_id:
                return (
                    f"opsbot's AWS credentials are of account {actual}, "
                    f"not {account_id} (aws.account_id)"
                )
        return None


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a ClientError (e.g. ``ImageNotFoundException``)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def describe_error(exc: BaseException) -> str:
    """What an AWS failure says, for a person: code and message, no request ids."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or "Error"
        message = str(error.get("Message") or "").strip()
        return f"{code}: {message}" if message else str(code)
    if isinstance(exc, BotoCoreError):
        return f"{type(exc).__name__}: {exc}"
    return type(exc).__name__


def may_have_been_done(exc: BaseException) -> bool:
    """Whether AWS may have carried out a call that failed: its answer lost, not a refusal.

    A refusal on the only try (a 4xx: access denied, a bad parameter, a service that
    does not exist) changed nothing, nor did an error raised before sending (no
    credentials, a bad parameter). A 5xx, a connection lost, a read that timed out
    may hide a change made; so may any error after retries, as an earlier try may
    have been one of those.
    """
    if isinstance(exc, ClientError):
        metadata = exc.response.get("ResponseMetadata") or {}
        status = int(metadata.get("HTTPStatusCode") or 0)
        retried = int(metadata.get("RetryAttempts") or 0) > 0
        return retried or not 400 <= status < 500
    return isinstance(exc, (HTTPClientError, BotoConnectionError))


AWS_ERRORS = (ClientError, BotoCoreError)
