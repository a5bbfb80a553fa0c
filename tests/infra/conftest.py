"""Fixtures for the infrastructure tests (Dockerfile, Slack manifest). Prefixed `infra_`."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def infra_repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture
def infra_free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
