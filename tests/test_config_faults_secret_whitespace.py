"""A secret given with whitespace at either end (the newline a secret store or `echo >file`
adds) is used without it: sent as-is it would fail every signature and every call."""

from __future__ import annotations

import pytest

from bot.config import parse_config
from bot.ops.preflight import preflight
from bot.settings import Settings

SECRETS = {
    "SLACK_BOT_TOKEN": ("slack_bot_token", "xoxb-1-abc"),
    "SLACK_SIGNING_SECRET": ("slack_signing_secret", "8f742231b10e8888abcd99yyyzzz85a5"),
    "SLACK_APP_TOKEN": ("slack_app_token", "xapp-1-A0-abc"),
    "PAGERDUTY_API_TOKEN": ("pagerduty_api_token", "pd-rest-token"),
    "OPSBOT_GITHUB_OIDC_TOKEN": ("github_oidc_token", "eyJ.header.sig"),
}


@pytest.mark.parametrize("variable", sorted(SECRETS))
@pytest.mark.parametrize("padding", ["\n", " ", "\r\n", "\t"], ids=["lf", "space", "crlf", "tab"])
def test_a_secret_setting_is_used_without_its_surrounding_whitespace(
    monkeypatch: pytest.MonkeyPatch, variable: str, padding: str
) -> None:
    field, value = SECRETS[variable]
    monkeypatch.setenv(variable, f"{padding}{value}{padding}")
    secret = getattr(Settings(), field)
    assert secret is not None and secret.get_secret_value() == value


def test_webhook_secrets_are_stripped_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGERDUTY_WEBHOOK_SECRETS", " w1 , w2\n")
    assert [s.get_secret_value() for s in Settings().pagerduty_webhook_secrets] == ["w1", "w2"]


def test_a_routing_key_is_used_without_its_surrounding_whitespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY_PADDED", "R0PRODROUTINGKEY\n")
    secret = Settings().env_secret("PD_KEY_PADDED")
    assert secret is not None and secret.get_secret_value() == "R0PRODROUTINGKEY"


def test_a_routing_key_of_whitespace_only_is_refused_at_start_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY_BLANK", " \n")
    settings = Settings()
    config = parse_config(
        {
            "alarm_routes": [
                {"match": {}, "channel": "C0ALERTS", "pagerduty_routing_key_env": "PD_KEY_BLANK"}
            ]
        }
    )
    result = preflight(
        config, routing_key_set=lambda name: settings.env_secret(name) is not None, slack=None
    )
    assert result.refusals == [
        "alarm_routes[0].pagerduty_routing_key_env: PD_KEY_BLANK is not set or empty "
        "(this route would post and never page)"
    ]


def test_the_app_token_check_sees_the_stripped_value(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bot token pasted with a newline into SLACK_APP_TOKEN is still named for what it is.
    monkeypatch.setenv("SLACK_APP_TOKEN", "xoxb-1-abc\n")
    with pytest.raises(ValueError, match="must be an app-level token"):
        Settings()
