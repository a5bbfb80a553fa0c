"""`opsbot serve` refuses to start on a Slack or PagerDuty secret that is set but empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "whitespace"])
@pytest.mark.parametrize(
    "variable", ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "PAGERDUTY_API_TOKEN"]
)
def test_a_blank_secret_stops_the_start_and_names_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {**os.environ, "OPSBOT_VAR_DIR": str(tmp_path / "var"), variable: value}
    result = _serve(env)
    assert result.returncode == 2
    assert f"{variable}: is set but empty" in result.stderr
    # Refused before anything was done: no database created, nothing served.
    assert not (tmp_path / "var").exists()


def test_unset_secrets_still_mean_disabled() -> None:
    from bot.settings import Settings

    settings = Settings()
    assert settings.slack_signing_secret is None and settings.slack_bot_token is None
    assert not settings.slack_inbound_enabled
    assert settings.pagerduty_api_token is None


def test_a_migration_that_fails_stops_the_start_with_the_childs_reason(tmp_path: Path) -> None:
    import sqlite3

    # A database a newer opsbot migrated, then rolled back to this one: the
    # migrating child cannot find the recorded revision.
    database = tmp_path / "newer.db"
    with sqlite3.connect(database) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        connection.execute("INSERT INTO alembic_version VALUES ('f0f0f0f0f0f0')")
    env = {
        **os.environ,
        "OPSBOT_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{database}",
    }
    result = _serve(env)
    assert result.returncode == 1
    assert "f0f0f0f0f0f0" in result.stderr
    assert "the database migration failed" in result.stderr
    assert "opsbot listening" not in result.stderr + result.stdout
