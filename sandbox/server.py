"""A small threaded HTTP(S) server on loopback that hands requests to an emulator."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sandbox.faults import Fault, FaultPlan

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# A port free_port found may be taken before the server binds it (by a server of a
# test running in parallel, or as the local end of a connection): a server started
# on one is started again on another, at most this many times in all.
PORT_ATTEMPTS = 3


def port_taken(said: str) -> bool:
    """Whether a server's last words (its log, its error) say its port was taken."""
    return "address already in use" in said.lower()


class _QuietServer(ThreadingHTTPServer):
    """Says nothing when a client hangs up mid-answer (a test that got what it
    wanted, a client that timed out): a printed traceback parses source lines in
    this thread, and CPython 3.11 may fail an `ast.parse` running in another
    thread at the same moment (gh-106905)."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, ssl.SSLEOFError)):
            return
        super().handle_error(request, client_address)


@dataclass
class HttpRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        parsed = parse_qs(self.body.decode("utf-8"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}


@dataclass
class HttpResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        return cls(
            status=status,
            body=json.dumps(data).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        )


Handle = Callable[[HttpRequest], HttpResponse]


class LoopbackServer:
    """Serves `handle` on 127.0.0.1 (port 0: any free port), optionally over TLS.

    `faults` is consulted before each request: a scripted failure is served
    instead of the emulator's answer, with the call named by `call_name`.
    """

    def __init__(
        self,
        handle: Handle,
        *,
        tls: ssl.SSLContext | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        call_name: Callable[[HttpRequest], str] = lambda r: r.path,
        fault_body: Callable[[int], Any] = lambda status: {"error": f"injected {status}"},
    ) -> None:
        self.faults = FaultPlan()
        self._handle = handle
        self._call_name = call_name
        self._fault_body = fault_body
        self._tls = tls
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle's algorithm the body
            # waits for the client's delayed ACK of the headers (40 ms on Linux).
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.client_address[0], *args)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = HttpRequest(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                response = server.dispatch(request)
                if response is None:  # a hang that outlived the client
                    return
                try:
                    self.send_response(response.status)
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        self.httpd = _QuietServer((host, port), Handler)
        self.httpd.daemon_threads = True
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self._tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def dispatch(self, request: HttpRequest) -> HttpResponse | None:
        fault = self.faults.take(self._call_name(request), request.method)
        if fault is not None:
            if fault.answer_when is not None:
                response = self._handle(request)
                fault.answer_when.wait(timeout=30)
                return response
            if fault.delay_s:
                time.sleep(fault.delay_s)
                if fault.status == 0:
                    return self._handle(request)
            if fault.done_after_s is not None:
                later = threading.Timer(fault.done_after_s, self._handle_late, (request, fault))
                later.daemon = True
                later.start()
            headers = {}
            if fault.retry_after_s is not None:
                headers["Retry-After"] = str(
                    int(fault.retry_after_s) if fault.retry_after_s >= 1 else 1
                )
            return HttpResponse.json(self._fault_body(fault.status), fault.status, headers)
        try:
            return self._handle(request)
        except Exception:
            log.exception("emulator failed on %s %s", request.method, request.path)
            return HttpResponse.json({"error": "emulator_error"}, 500)

    def _handle_late(self, request: HttpRequest, fault: Fault) -> None:
        """Do what `request` asks, its answer gone (`fault` answered it already)."""
        try:
            self._handle(request)
        except Exception:
            log.exception("emulator failed on %s %s", request.method, request.path)
        self.faults.mark_done(fault)

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name=f"emulator-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
