"""A certificate host that an attacker controls: it holds answers, fails, or sends too much."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from bot.sns.fetch import MAX_BYTES
from sandbox.server import HttpRequest, HttpResponse, LoopbackServer
from sandbox.tls import TestCA

HOLD_LIMIT_S = 60.0  # a held answer never outlives a failed test by much


class CertHost:
    """HTTPS on loopback. Paths: `/held/...` answer 404 once released, `/missing/...` 404,
    `/flaky/...` 503, `/big/...` more than a certificate may be, `/cert/...` `cert_pem`."""

    def __init__(self, test_ca: TestCA, *, cert_pem: bytes = b"") -> None:
        self.cert_pem = cert_pem
        self.requests: Counter[str] = Counter()
        self.holding = 0
        self.answered_held = 0
        self._release = threading.Event()
        self._lock = threading.Lock()
        self.server = LoopbackServer(self._handle, tls=test_ca.server_context())

    def url(self, path: str) -> str:
        return self.server.url + path

    @property
    def pattern_part(self) -> str:
        return rf"127\.0\.0\.1:{self.server.port}"

    def release(self) -> None:
        self._release.set()

    def _handle(self, request: HttpRequest) -> HttpResponse:
        with self._lock:
            self.requests[request.path] += 1
        if request.path.startswith("/held/"):
            with self._lock:
                self.holding += 1
            self._release.wait(HOLD_LIMIT_S)
            with self._lock:
                self.holding -= 1
                self.answered_held += 1
            return HttpResponse(404, b"no such certificate")
        if request.path.startswith("/flaky/"):
            return HttpResponse(503, b"try later")
        if request.path.startswith("/big/"):
            return HttpResponse(200, b"-" * (MAX_BYTES + 1))
        if request.path.startswith("/cert/"):
            return HttpResponse(200, self.cert_pem)
        return HttpResponse(404, b"no such certificate")


@pytest.fixture
def cert_host(test_ca: TestCA) -> Iterator[CertHost]:
    host = CertHost(test_ca)
    host.server.start()
    yield host
    host.release()
    host.server.stop()
