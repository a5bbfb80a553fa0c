"""`opsbot serve` refuses to start on a Slack or PagerDuty secret that is set but empty."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "whitespace"])
@pytest.mark.parametrize(
    "variable", ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "PAGERDUTY_API_TOKEN"]
)
def test_a_blank_secret_stops_the_start_and_names_the_variable(
    tmp_path: Path, variable: str, value: str
) -> None:
    env = {**os.environ, "OPSBOT_VAR_DIR": str(tmp_path / "var"), variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
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
