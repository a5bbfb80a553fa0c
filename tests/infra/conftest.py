"""Fixtures for the infrastructure tests (Dockerfile, Slack manifest). Prefixed `infra_`."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.server import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def infra_repo() -> Path:
    """The repository root."""
    return REPO


@pytest.fixture
def infra_free_port() -> int:
    """A TCP port free on loopback right now."""
    return free_port()
