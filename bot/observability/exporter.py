"""GET /metrics on a port of its own, which the load balancer never routes to."""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server

log = logging.getLogger(__name__)


class MetricsPortUnavailable(Exception):
    """The metrics port cannot be listened on; the message is one line for the operator."""


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: Thread
    host: str

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104
        return f"http://{shown}:{self.port}/metrics"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(registry: CollectorRegistry, *, host: str, port: int) -> MetricsServer:
    """Serve `registry` at http://host:port/metrics in a daemon thread (port 0: any free one)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            why = "it is already in use"
        else:
            why = exc.strerror or type(exc).__name__
        raise MetricsPortUnavailable(
            f"cannot serve metrics on {host}:{port}: {why} "
            "(choose another with --metrics-port or OPSBOT_METRICS_PORT)"
        ) from None
    metrics = MetricsServer(server=server, thread=thread, host=host)
    log.info("metrics at %s", metrics.url, extra={"port": metrics.port})
    return metrics
