"""Helpers the tests share: waiting, a live service on loopback, signed Slack requests,
a recording HTTP server."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn

from bot.app import build_runtime, create_app
from bot.clock import Clock
from bot.config import Config
from bot.runtime import Runtime
from bot.settings import Settings
from handlers.server import server_config
from sandbox import slack_requests


def wait_for(
    predicate: Callable[[], Any], *, timeout_s: float = 60.0, interval_s: float = 0.05
) -> Any:
    """Poll until `predicate` returns something truthy; fail with its last value.

    The default is generous because it only costs time when a test fails, and CI machines
    stall whole processes for tens of seconds (the event loop and a database query both
    20 s late in one run)."""
    deadline = time.monotonic() + timeout_s
    value = predicate()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s (last value: {value!r})")
        time.sleep(interval_s)
        value = predicate()
    return value


def sns_headers(content: bytes | str) -> dict[str, str]:
    """The topic header SNS sends with every request: the body's TopicArn, when it has one
    (a test that means to leave it out, or to send another, gives its own headers)."""
    try:
        envelope = json.loads(content)
    except (ValueError, RecursionError):
        return {}
    topic = envelope.get("TopicArn") if isinstance(envelope, dict) else None
    # A value no HTTP header can carry (a newline, a byte past ASCII) stays in the body.
    sendable = isinstance(topic, str) and topic.isascii() and topic.isprintable()
    return {"x-amz-sns-topic-arn": topic} if sendable else {}


@dataclass
class LiveService:
    """opsbot serving on loopback in this process, with its outbox worker running."""

    runtime: Runtime
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def post(
        self, path: str, *, content: bytes | str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        headers = dict(headers or {})
        if path == "/sns":
            headers = sns_headers(content) | headers
        return httpx.post(self.url + path, content=content, headers=headers, timeout=30)

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.url + path, timeout=30)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def metric(service: LiveService, name: str, **labels: str) -> float:
    """A sample of the service's own registry (0 when never set)."""
    return service.runtime.metrics.registry.get_sample_value(name, labels) or 0.0


def loopback_socket() -> tuple[socket.socket, int]:
    """A socket bound to a free loopback port, and the port, for a server started in-process.

    Handing uvicorn the bound socket leaves no moment in which a parallel test
    could take the port, as a port found free and bound later could be.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, int(sock.getsockname()[1])


def start_service(
    settings: Settings, config: Config, *, clock: Clock | None = None, run_jobs: bool = True
) -> LiveService:
    runtime = build_runtime(settings, config, clock=clock, run_jobs=run_jobs)
    app = create_app(runtime)
    sock, port = loopback_socket()
    server = uvicorn.Server(server_config(app, settings, host="127.0.0.1", port=port))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"opsbot-{port}", daemon=True
    )
    thread.start()
    wait_for(lambda: server.started, timeout_s=20)
    return LiveService(
        runtime=runtime, url=f"http://127.0.0.1:{port}", server=server, thread=thread
    )


def slack_signature(secret: str, timestamp: int, body: str) -> str:
    return slack_requests.signature(secret, timestamp, body)


def slack_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    return slack_requests.signed_headers(secret, body, timestamp=timestamp)


def slash_command_body(
    command: str,
    text: str,
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0ALERTS",
    response_url: str = "https://hooks.slack.test/commands/1",
) -> str:
    return slack_requests.slash_command(
        command,
        text,
        user_id=user_id,
        channel_id=channel_id,
        channel_name="alerts",
        response_url=response_url,
    )


def block_action_body(
    action_id: str,
    value: str,
    *,
    user_id: str = "U0ALICE",
    channel_id: str = "C0ALERTS",
    message_ts: str = "1.000001",
    response_url: str = "https://hooks.slack.test/actions/1",
    block_id: str = "b",
    selected_option: str | None = None,
) -> str:
    """A button click; with `selected_option`, a choice in a select menu instead."""
    return slack_requests.block_action(
        action_id,
        value,
        user_id=user_id,
        channel_id=channel_id,
        channel_name="alerts",
        message_ts=message_ts,
        response_url=response_url,
        block_id=block_id,
        selected_option=selected_option,
    )


def event_body(event: dict[str, Any], *, event_id: str = "Ev0001", team_id: str = "T0000") -> str:
    """An Events API delivery (`event_callback`), as JSON."""
    return slack_requests.event_callback(event, event_id=event_id, team_id=team_id)


class RecordingServer:
    """Answers every POST with one status, headers and body over HTTP/1.1 (connections
    kept alive), recording each request's client port, path, body and headers (names
    in lower case)."""

    def __init__(
        self,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"ok",
    ) -> None:
        self.requests: list[tuple[int, str, bytes, dict[str, str]]] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                received = self.rfile.read(int(self.headers["Content-Length"]))
                names = {name.lower(): value for name, value in self.headers.items()}
                request = (self.client_address[1], self.path, received, names)
                recorded.append(request)
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def client_ports(self) -> set[int]:
        return {port for port, *_ in self.requests}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def statements_sent(*engines: sa.Engine | None) -> Iterator[list[tuple[str, list[Any]]]]:
    """Every statement the `engines` send meanwhile (upper case, spaces collapsed),
    with its parameters' values; None stands for an engine a runtime does not have."""
    sent: list[tuple[str, list[Any]]] = []

    def watching(
        _conn: object, _cursor: object, statement: str, parameters: Any, *_args: object
    ) -> None:
        values = list(parameters.values() if isinstance(parameters, dict) else parameters or ())
        sent.append((" ".join(statement.split()).upper(), values))

    watched = [engine for engine in engines if engine is not None]
    for engine in watched:
        sa.event.listen(engine, "before_cursor_execute", watching)
    try:
        yield sent
    finally:
        for engine in watched:
            sa.event.remove(engine, "before_cursor_execute", watching)
