"""Bounded request bodies: capped and timed while they stream, before anything holds them.

Every route's body passes through `BoundedBodies`, a plain ASGI middleware, as
it arrives. A declared Content-Length over the route's cap is answered 413
before a byte of the body is read; a chunked (or lying) body is answered 413 as
soon as the running count passes the cap; a body that does not arrive in full
within `body_timeout_s` of the first read is answered 408. Each refusal closes
the connection (`Connection: close`), so nothing more of that body is read into
the process. A route that answers before reading its whole body closes the
connection too, so an unread body cannot keep it open.

The timeout on request heads, which arrive before any ASGI app runs, lives in
the server's protocol (`handlers.server`).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bot.settings import Settings

log = logging.getLogger(__name__)

# Routes that take no body at all.
NO_BODY_PATHS = ("/healthz", "/readyz")
# A request line and headers larger than this are refused (431). Slack, SNS,
# PagerDuty and the load balancer send a few hundred bytes.
MAX_HEAD_BYTES = 16 * 1024


@dataclass(frozen=True)
class RequestLimits:
    """How large a body may be (per path, else `max_body_bytes`) and how long it may take."""

    max_body_bytes: int
    body_timeout_s: float
    caps: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> RequestLimits:
        return cls(
            max_body_bytes=settings.max_body_bytes,
            body_timeout_s=settings.body_timeout_s,
            caps=dict.fromkeys(NO_BODY_PATHS, 0),
        )

    def cap_for(self, path: str) -> int:
        return self.caps.get(path, self.max_body_bytes)


class BodyRefused(Exception):
    """Raised into the app reading a body that was refused; the answer is already sent."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _head_bytes(scope: Scope) -> int:
    """About how large the request line and headers were on the wire."""
    line = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") + 16
    return line + sum(len(key) + len(value) + 4 for key, value in scope["headers"])


def _shown(path: str) -> str:
    """The request path as a log line may show it: quoted, and never long."""
    return repr(path[:100])


class _Request:
    """One request's body as the app reads it: counted, timed, refused at most once."""

    def __init__(
        self, scope: Scope, receive: Receive, send: Send, *, cap: int, timeout_s: float
    ) -> None:
        self.scope = scope
        self._receive = receive
        self._send = send
        self.cap = cap
        self.timeout_s = timeout_s
        self.received = 0
        self.body_complete = False
        self.refused = False
        self._deadline: float | None = None
        length = _header(scope, b"content-length")
        self.declared = int(length) if length is not None and length.isdigit() else None
        chunked = _header(scope, b"transfer-encoding") is not None
        self.has_body = chunked or bool(self.declared)

    async def receive(self) -> Message:
        if self.refused:
            return {"type": "http.disconnect"}
        if self.body_complete:
            # After the body only a disconnect can come, whenever it comes: no deadline.
            return await self._receive()
        if self._deadline is None:
            self._deadline = anyio.current_time() + self.timeout_s
        remaining_s = self._deadline - anyio.current_time()
        try:
            if remaining_s <= 0:
                raise TimeoutError
            with anyio.fail_after(remaining_s):
                message = await self._receive()
        except TimeoutError:
            await self.refuse(
                408,
                f"the body did not arrive within {self.timeout_s:g} s",
                why=f"body incomplete after {self.timeout_s:g} s ({self.received} bytes)",
            )
            raise BodyRefused from None
        if message["type"] != "http.request":
            self.body_complete = True  # http.disconnect: the client is gone
            return message
        self.received += len(message.get("body", b""))
        if self.received > self.cap:
            await self.refuse(
                413,
                f"body too large: at most {self.cap} bytes",
                why=f"body over {self.cap} bytes after {self.received} bytes",
            )
            raise BodyRefused
        if not message.get("more_body", False):
            self.body_complete = True
        return message

    async def send(self, message: Message) -> None:
        if self.refused:
            return  # the refusal was the answer; whatever the app says after it is dropped
        if message["type"] == "http.response.start" and self.has_body and not self.body_complete:
            # Answered before the body was read in full: the rest is never read, so
            # the connection cannot carry another request.
            headers = [*message.get("headers", []), (b"connection", b"close")]
            message = {**message, "headers": headers}
        await self._send(message)

    async def refuse(self, status: int, text: str, *, why: str) -> None:
        """Answer `status` with `text` and close the connection; log once, with `why`."""
        self.refused = True
        client = self.scope.get("client")
        log.warning(
            "refused %s %s from %s: %s",
            self.scope.get("method"),
            _shown(self.scope.get("path", "")),
            f"{client[0]}:{client[1]}" if client else "?",
            why,
        )
        body = json.dumps({"status": status, "message": text}).encode()
        await self._send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


class BoundedBodies:
    """ASGI middleware: every request body capped per path and timed, refused while it streams."""

    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.limits.cap_for(scope["path"])
        request = _Request(scope, receive, send, cap=cap, timeout_s=self.limits.body_timeout_s)
        head = _head_bytes(scope)
        if head > MAX_HEAD_BYTES:
            # A head sent slowly meets h11's own cap (400); one that came whole, this.
            await request.refuse(
                431,
                f"request head too large: at most {MAX_HEAD_BYTES} bytes",
                why=f"request head of {head} bytes",
            )
            return
        if request.declared is not None and request.declared > cap:
            await request.refuse(
                413,
                f"body too large: at most {cap} bytes",
                why=f"Content-Length {request.declared} over {cap} bytes",
            )
            return
        # A refusal is answered and logged where the body was refused.
        with contextlib.suppress(BodyRefused):
            await self.app(scope, request.receive, request.send)
