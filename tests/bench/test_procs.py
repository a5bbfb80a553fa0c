"""The benchmark's servers start on another port when theirs was taken before they bound it."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bench.procs import StartFailed, spawn_on_free_port
from sandbox.server import free_port


def _file_server(directory: Path) -> Callable[[int], list[str]]:
    return lambda port: [
        *(sys.executable, "-m", "http.server", "--bind", "127.0.0.1"),
        *("--directory", str(directory), str(port)),
    ]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port bound by someone else (not listening: nothing answers on it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def test_a_server_whose_port_was_taken_starts_on_the_next_one(
    tmp_path: Path, taken_port: int
) -> None:
    offered = [taken_port, free_port()]
    picked: list[int] = []

    def pick() -> int:
        picked.append(offered[len(picked)])
        return picked[-1]

    service = spawn_on_free_port(
        "file-server",
        _file_server(tmp_path),
        env=dict(os.environ),
        ready_path="/",
        log_path=tmp_path / "server.log",
        pick_port=pick,
    )
    try:
        assert picked == offered
        assert service.url == f"http://127.0.0.1:{offered[1]}"
        assert httpx.get(service.url + "/", timeout=10).status_code == 200
    finally:
        service.stop()


def test_a_server_that_fails_for_another_reason_is_not_started_again(tmp_path: Path) -> None:
    picked: list[int] = []

    def pick() -> int:
        picked.append(free_port())
        return picked[-1]

    with pytest.raises(StartFailed, match="No module named"):
        spawn_on_free_port(
            "nothing",
            lambda port: [sys.executable, "-m", "bench_no_such_module", str(port)],
            env=dict(os.environ),
            ready_path="/",
            log_path=tmp_path / "nothing.log",
            pick_port=pick,
        )
    assert len(picked) == 1
