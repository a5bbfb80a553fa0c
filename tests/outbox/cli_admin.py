"""`opsbot outbox retry` needs an admin: the CLI's identity mapped to one of `rights.admins`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from bot.settings import Settings
from tests.conftest import TEST_CONFIG

ADMIN = "U0ALICE"


def as_cli_admin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, *, database_url: str) -> str:
    """Point the in-process CLI at `database_url`, with a config file in which this OS user
    (`rights.cli`) acts as an admin listed by id (no Slack needed). Its identity."""
    identity = Settings().os_identity
    data = json.loads(json.dumps(TEST_CONFIG))
    data["rights"] = {"admins": {"users": [ADMIN]}, "cli": {identity: ADMIN}}
    path = tmp_path / "cli-admin.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    monkeypatch.setenv("OPSBOT_CONFIG", str(path))
    monkeypatch.setenv("DATABASE_URL", database_url)
    return identity
