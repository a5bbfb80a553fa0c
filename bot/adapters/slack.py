"""Slack Web API clients, and the answers posted to response_urls."""

from __future__ import annotations

import io
import json
import logging
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPMessage
from typing import Any
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request

import httpx2
from slack_sdk import WebClient
from slack_sdk.errors import SlackRequestError

log = logging.getLogger(__name__)

# Failures before a request could leave: nothing reached Slack, so it may go again at once.
NOTHING_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


class KeptAliveWebClient(WebClient):
    """slack_sdk's WebClient, its calls sent over kept-alive connections.

    slack_sdk sends each call through urllib's `urlopen`, which builds a new
    opener (a dozen handlers) and opens a connection and a TLS session every
    time; every call goes to one host, so this sends them through one httpx2
    pool instead. slack_sdk gets back what urllib gives it: the answer, an
    HTTPError for a status outside 2xx (its retry handlers and SlackApiError
    work unchanged), a URLError when the connection failed, whose reason is
    ConnectionRefusedError when nothing could have reached Slack.
    """

    def __init__(self, *, tls: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(ssl=tls, **kwargs)
        self._http = httpx2.Client(verify=tls, timeout=self.timeout, follow_redirects=False)

    def _perform_urllib_http_request_internal(self, url: str, req: Request) -> dict[str, Any]:
        if not url.lower().startswith(("http://", "https://")):
            raise SlackRequestError(f"Invalid URL detected: {url}")
        body = req.data  # slack_sdk encodes every body, files included, to bytes
        if body is not None and not isinstance(body, bytes):
            raise SlackRequestError(f"Unexpected request body: {type(body).__name__}")
        try:
            response = self._http.request(
                req.get_method(), url, content=body, headers=dict(req.header_items())
            )
        except NOTHING_SENT as exc:
            raise URLError(ConnectionRefusedError(f"Slack unreachable: {exc!r}")) from None
        except httpx2.TimeoutException as exc:
            raise TimeoutError(f"Slack did not answer in time: {exc!r}") from None
        except httpx2.HTTPError as exc:
            raise URLError(ConnectionResetError(f"Slack's answer broke off: {exc!r}")) from None
        headers = HTTPMessage()
        for name, value in response.headers.multi_items():
            headers[name] = value  # adds: a repeated header keeps every value
        if not response.is_success:
            content = io.BytesIO(response.content)
            raise HTTPError(url, response.status_code, response.reason_phrase, headers, content)
        answer: str | bytes = response.content
        if headers.get_content_type() != "application/gzip":
            answer = response.content.decode(headers.get_content_charset() or "utf-8")
        return {"status": response.status_code, "headers": headers, "body": answer}

    def close(self) -> None:
        self._http.close()


def web_client(
    *, token: str | None, base_url: str, tls: ssl.SSLContext, timeout_s: float, retries: bool
) -> KeptAliveWebClient:
    """A WebClient; the outbox's has no retry handlers because the outbox owns retries.

    The caller closes it (its pool of connections) when done.
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    client = KeptAliveWebClient(token=token, base_url=base, tls=tls, timeout=int(max(1, timeout_s)))
    if not retries:
        client.retry_handlers = []
    return client


@dataclass(frozen=True)
class Answered:
    """What a response_url said to an answer."""

    status_code: int
    headers: Mapping[str, str]
    body: str


# Slack's Web API hosts, and the host each hands out response_urls on.
HOOKS_HOSTS = {"slack.com": "hooks.slack.com", "slack-gov.com": "hooks.slack-gov.com"}
# A URL as Slack writes one: printable ASCII, no backslash (parsers differ on those).
_PLAIN_URL = re.compile(r"[!-\[\]-~]+")


@dataclass(frozen=True)
class Hooks:
    """Where response_urls may point: https on Slack's hooks host for the Web API opsbot
    talks to (`SLACK_API_URL`: hooks.slack.com for slack.com); for another API base (the
    emulator), that base's own scheme and host.

    Only a URL Slack handed out may carry a person's answer: anything else (a
    metadata address, a service inside the network) is never contacted.
    """

    scheme: str
    host: str  # in lower case

    @classmethod
    def of(cls, slack_api_url: str) -> Hooks:
        api = urlsplit(slack_api_url)
        host = api.hostname or ""
        # `slack.com.` and `www.slack.com` are Slack's API too, and hand out hooks.slack.com.
        hooks = HOOKS_HOSTS.get(host.rstrip(".").removeprefix("www."))
        return cls("https", hooks) if hooks is not None else cls(api.scheme.lower(), host)

    def holds(self, url: str) -> bool:
        if not _PLAIN_URL.fullmatch(url):
            return False
        try:
            parts = urlsplit(url)
        except ValueError:
            return False
        return (
            parts.scheme.lower() == self.scheme
            and "@" not in parts.netloc
            and parts.hostname == self.host
        )

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}"


# What an answer to a URL that is not Slack's is taken as: a refusal, so never sent again.
NOT_SLACKS = 403


class ResponseUrls:
    """Posts answers to response_urls over kept-alive connections, one pool for the process.

    slack_sdk's WebhookClient opens a connection, and a TLS session, for every
    answer; these all go to one host, so this keeps a few open instead (httpx2,
    the PagerDuty client's HTTP stack, already loaded). A failure before the
    request could leave raises ConnectionRefusedError (nothing reached Slack:
    send again at once); any other raises OSError (Slack may have it). A URL
    not on `hooks` is not contacted: it is answered NOT_SLACKS, as a refusal.
    """

    def __init__(self, *, tls: ssl.SSLContext, timeout_s: float, hooks: Hooks) -> None:
        self._client = httpx2.Client(verify=tls, timeout=timeout_s, follow_redirects=False)
        self.hooks = hooks

    def post(self, url: str, body: Mapping[str, Any]) -> Answered:
        if not self.hooks.holds(url):
            # Never the URL itself: a response_url is a credential, and this one's origin
            # is unknown.
            log.warning("an answer was not sent: its response_url is not on %s", self.hooks)
            return Answered(NOT_SLACKS, {}, f"not sent: the response_url is not on {self.hooks}")
        try:
            response = self._client.post(
                url,
                content=json.dumps(body).encode(),
                headers={"Content-Type": "application/json;charset=utf-8"},
            )
        except NOTHING_SENT as exc:
            raise ConnectionRefusedError(
                f"response_url unreachable: {type(exc).__name__}"
            ) from None
        except httpx2.HTTPError as exc:
            raise OSError(f"response_url did not answer: {type(exc).__name__}") from None
        return Answered(response.status_code, response.headers, response.text)

    def close(self) -> None:
        self._client.close()
