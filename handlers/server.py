"""The HTTP server as production runs it: uvicorn's h11 protocol, with deadlines and a clean close.

`server_config` is the one place the server is configured; `opsbot serve`,
`opsbot dev` and the tests' live service all use it. On top of uvicorn:

- A request head (request line and headers) must be complete within
  `header_timeout_s` of its first byte (of the connection, for a new one);
  otherwise the connection is closed, after a 408 when any of the head came.
  uvicorn itself has no such deadline: a client sending one header byte a
  minute would hold its connection forever.
- A head still incomplete past `MAX_HEAD_BYTES` is answered 400 (h11); one that
  arrived whole is measured by `handlers.limits` (431).
- A connection whose request was answered before its body was read is closed.
- Closing a connection whose request is still arriving (a refused body, a
  late head) half-closes it and discards what comes for `LINGER_S`, then
  closes. Closing at once with unread bytes makes the kernel reset the
  connection, and a reset can destroy the answer before the client reads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from bot.settings import Settings
from handlers.limits import MAX_HEAD_BYTES

log = logging.getLogger(__name__)

# Longer than the load balancer's idle timeout (60 s, infra/modules/service/
# load-balancer.tf): a connection the ALB reuses must not be one we just closed
# (the ALB answers 502). uvicorn's default is 5 s.
KEEP_ALIVE_S = 75
LINGER_S = 2.0
BACKLOG = 1024


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, plus the deadline for request heads."""

    def __init__(self, app: Any, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_timeout_s = header_timeout_s


def server_config(
    app: Any, settings: Settings, *, host: str, port: int, access_log: bool = False
) -> ServerConfig:
    """How opsbot serves `app`: limits from `settings`, the protocol below, our logging."""
    return ServerConfig(
        app,
        host=host,
        port=port,
        http=BoundedH11Protocol,
        log_config=None,
        access_log=access_log,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=settings.max_connections,
        backlog=BACKLOG,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        header_timeout_s=settings.header_timeout_s,
    )


def _timeout_answer(text: str) -> bytes:
    body = json.dumps({"status": 408, "message": text}).encode()
    head = (
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _LingeringTransport(asyncio.Transport):
    """The connection's transport, whose `close` lingers while the peer may still be sending."""

    def __init__(self, transport: asyncio.Transport, protocol: BoundedH11Protocol) -> None:
        super().__init__()
        self._transport = transport
        self._protocol = protocol
        self._closing = False
        self._timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._protocol.peer_still_sending() or self._transport.is_closing():
            self._transport.close()
            return
        self._protocol.lingering = True
        if self._transport.can_write_eof():
            self._transport.write_eof()  # the answer ends here; the peer sees it end
        self._transport.resume_reading()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(LINGER_S, self._transport.close)

    def cancel_linger(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def abort(self) -> None:
        self.cancel_linger()
        self._transport.abort()

    def write(self, data: bytes | bytearray | memoryview[int]) -> None:
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)


class BoundedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline on request heads and a lingering close."""

    def __init__(self, config: uvicorn.Config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        assert isinstance(config, ServerConfig), "built by server_config"
        self.header_timeout_s = config.header_timeout_s
        self.lingering = False
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering_transport: _LingeringTransport | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._lingering_transport = _LingeringTransport(transport, self)
        super().connection_made(self._lingering_transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self._lingering_transport is not None:
            self._lingering_transport.cancel_linger()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return  # answered and closing: what still comes is discarded, never parsed
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of a request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            # Answered before its body was read (a refusal, a 503 at the concurrency
            # limit): the rest is never read, so the connection cannot be used again.
            self.transport.close()
        super().on_response_complete()
        # Bytes of a next request (pipelined) may already wait: their head is timed too.
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_head_timer()

    def peer_still_sending(self) -> bool:
        """Whether the request being received is unfinished (so closing now would reset)."""
        state = self.conn.their_state
        if state is h11.IDLE:
            return bool(self.conn.trailing_data[0])
        return state in (h11.SEND_BODY, h11.ERROR)

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is not h11.IDLE or self.transport.is_closing():
            return
        received = len(self.conn.trailing_data[0])
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "?"
        if received:
            log.warning(
                "closed a connection from %s: request head incomplete after %g s (%d bytes)",
                client,
                self.header_timeout_s,
                received,
            )
            self.transport.write(
                _timeout_answer(
                    f"the request head did not arrive within {self.header_timeout_s:g} s"
                )
            )
        else:
            log.info(
                "closed a connection from %s: no request within %g s", client, self.header_timeout_s
            )
        self.transport.close()
