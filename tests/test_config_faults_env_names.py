"""The environment is read under the names docs/configuration.md lists, spelt exactly so:
not under a setting's field name (`VAR_DIR`, `sns_url_pattern`), which a developer's
shell or a platform may set for something else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.settings import DEFAULT_SNS_URL_PATTERN, Settings, variable_names
from sandbox.environment import clean_environment, settings_variables

DOCS = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"


def documented_variables() -> set[str]:
    """Every `NAME` in the first column of the environment table."""
    text = DOCS.read_text(encoding="utf-8")
    rows = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return {
        name
        for line in rows.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split(" | ")[0])
    }


def test_every_name_read_is_documented() -> None:
    assert set(settings_variables()) <= documented_variables()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VAR_DIR", "/tmp/elsewhere"),
        ("var_dir", "/tmp/elsewhere"),
        ("CONFIG_PATH", "/etc/other.yaml"),
        ("SNS_URL_PATTERN", "^https://evil/"),
        ("sns_url_pattern", "^https://evil/"),
        ("ALARM_QUEUE_RAW_DELIVERY", "true"),
        ("ALARM_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/1/q"),
        ("GITHUB_OIDC_TOKEN", "a-token"),
        ("LOG_LEVEL", "DEBUG"),
        ("METRICS_PORT", "9999"),
        ("MAX_CONNECTIONS", "16"),
        ("HEARTBEAT_S", "1"),
        ("slack_bot_token", "FAKE-slack-bot-token"),
        ("opsbot_var_dir", "/tmp/elsewhere"),
    ],
)
def test_an_undocumented_name_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    settings = Settings()
    assert settings == Settings.given()
    assert settings.var_dir == Path("var") and settings.sns_url_pattern == DEFAULT_SNS_URL_PATTERN
    assert not settings.alarm_queue_raw_delivery and settings.github_oidc_token is None


def test_no_field_name_is_read_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, field in Settings.model_fields.items():
        documented = variable_names(name, field)
        for spelling in (name, name.upper()):
            if spelling not in documented:
                monkeypatch.setenv(spelling, "not-a-valid-value-for-anything")
    assert Settings() == Settings.given()


def test_the_documented_names_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_VAR_DIR", "/tmp/here")
    monkeypatch.setenv("OPSBOT_SNS_CERT_URL_PATTERN", "^https://emulator/")
    monkeypatch.setenv("OPSBOT_ALARM_QUEUE_RAW_DELIVERY", "true")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    settings = Settings()
    assert settings.var_dir == Path("/tmp/here")
    assert settings.sns_url_pattern == "^https://emulator/"
    assert settings.alarm_queue_raw_delivery and settings.slack_enabled
    assert settings.aws_region == "eu-west-1"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")  # AWS's own order: AWS_REGION first
    assert Settings().aws_region == "eu-central-1"


def test_settings_given_in_code_read_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the sandbox runs with: a real app token in the shell must not switch it to
    # Socket Mode, nor a CI job's OIDC token become its identity.
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-REAL")
    monkeypatch.setenv("OPSBOT_GITHUB_OIDC_TOKEN", "a-token")
    monkeypatch.setenv("OPSBOT_SNS_TOPIC_ARNS", "arn:aws:sns:us-east-1:123456789012:real")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    settings = Settings.given(slack_bot_token="xoxb-sandbox", var_dir=Path("/tmp/sandbox"))
    assert not settings.slack_socket_mode and settings.github_oidc_token is None
    assert settings.sns_topic_arns == [] and settings.aws_region == "us-east-1"
    assert settings.var_dir == Path("/tmp/sandbox") and settings.slack_enabled
    # Secrets given in code still answer, as for settings read from the environment.
    secret = settings.with_secrets({"PD_KEY_SANDBOX": "k"}).env_secret("PD_KEY_SANDBOX")
    assert secret is not None and secret.get_secret_value() == "k"


def test_a_process_under_test_inherits_no_name_settings_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = settings_variables()
    assert {"AWS_REGION", "AWS_DEFAULT_REGION", "OPSBOT_SNS_CERT_URL_PATTERN"} <= set(names)
    for name in names:
        monkeypatch.setenv(name, "from-the-shell")
    env = clean_environment({})
    assert not set(names) & set(env)


def test_described_names_each_setting_by_its_documented_name() -> None:
    rows = dict(Settings.given().described())
    assert {"OPSBOT_VAR_DIR", "OPSBOT_SNS_CERT_URL_PATTERN", "AWS_REGION"} <= set(rows)
    assert not {"var_dir", "VAR_DIR", "sns_url_pattern"} & set(rows)
