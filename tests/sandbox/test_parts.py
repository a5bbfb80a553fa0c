"""The sandbox's parts on their own: settings given in code, the demo config, the Slack
emulator's response_url semantics, the role-manager stand-in, AppConfig deployment timing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.config import ConfigError, load_config_text
from bot.log import RedactSecrets
from bot.settings import Settings
from sandbox.appconfig import AppConfigGaps, AppConfigIds, Deployment, Strategy
from sandbox.dev import demo_config, demo_config_text
from sandbox.environment import clean_environment, settings_variables
from sandbox.lambdas import stand_ins
from sandbox.slack import SlackEmulator


def test_a_process_under_test_inherits_none_of_opsbots_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = settings_variables()
    monkeypatch.setenv("OPSBOT_LOG_LEVEL", "WARNING")  # the names are the ones Settings reads
    assert "OPSBOT_LOG_LEVEL" in names and Settings().log_level == "WARNING"
    assert {"DATABASE_URL", "SLACK_BOT_TOKEN", "PAGERDUTY_API_TOKEN", "SSL_CERT_FILE"} <= set(names)
    for name in names:
        monkeypatch.setenv(name, "from-the-shell")
    monkeypatch.setenv("SANDBOX_TEST_OTHER", "kept")
    env = clean_environment({"DATABASE_URL": "sqlite://"})
    assert [n for n in names if n in env] == ["DATABASE_URL"]
    assert env["DATABASE_URL"] == "sqlite://" and env["SANDBOX_TEST_OTHER"] == "kept"


def test_secrets_given_in_code_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PD_KEY_DEMO", "from-the-environment")
    settings = Settings().with_secrets({"PD_KEY_DEMO": "given-in-code"})
    secret = settings.env_secret("PD_KEY_DEMO")
    assert secret is not None and secret.get_secret_value() == "given-in-code"
    assert Settings().env_secret("PD_KEY_DEMO").get_secret_value() == "from-the-environment"  # type: ignore[union-attr]
    assert "given-in-code" in settings.secret_values()
    assert RedactSecrets(settings.secret_values()).redact("key given-in-code") == "key [redacted]"
    with pytest.raises(ValueError, match="not a variable name"):
        settings.with_secrets({"not a name": "x"})


def test_described_settings_mask_every_secret() -> None:
    settings = Settings(
        slack_bot_token="xoxb-visible", pagerduty_webhook_secrets=["w1", "w2"]
    ).with_secrets({"PD_KEY_DEMO": "routing"})
    rows = dict(settings.described())
    assert rows["SLACK_BOT_TOKEN"] == "******** (set)"
    assert rows["PAGERDUTY_WEBHOOK_SECRETS"] == "******** (set), ******** (set)"
    assert rows["PD_KEY_DEMO"].startswith("********")
    assert rows["DATABASE_URL"].startswith("(not set: the embedded default, sqlite:///")
    assert not any(s in str(rows) for s in ("xoxb-visible", "w1", "routing"))


def test_the_demo_config_is_valid_and_names_what_the_world_has() -> None:
    config = demo_config(AppConfigIds("a1b2c3d", "e4f5a6b", "c7d8e9f", "f0a1b2c"))
    prod = config.apps["checkout"].environments["prod"]
    staging = config.apps["checkout"].environments["staging"]
    assert prod.protected and not staging.protected
    assert prod.flags is not None and prod.flags.backend == "appconfig"
    assert prod.flags.application == "a1b2c3d"  # type: ignore[union-attr]
    assert staging.flags is not None and staging.flags.backend == "ssm"
    assert prod.dbrole is not None and prod.dbrole.function == "checkout-prod-role-manager"
    assert "U0CAROL" in staging.deployers.users and "U0CAROL" not in prod.deployers.users
    assert config.routing_key_envs() == {"PD_KEY_SANDBOX"}
    # As a file, placeholders and all, it passes `opsbot check-config`.
    load_config_text(demo_config_text(), source="demo")


def test_a_broken_demo_config_would_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"apps\.checkout\.environments\.prod\.protected"):
        load_config_text(
            demo_config_text().replace("protected: true", "protected: maybe"), source="demo"
        )


@pytest.fixture
def slack() -> Iterator[SlackEmulator]:
    emulator = SlackEmulator()
    emulator.add_channel("C0ALERTS", "alerts")
    emulator.start()
    yield emulator
    emulator.stop()


def post(url: str, body: dict[str, Any]) -> None:
    httpx.post(url, json=body, timeout=10).raise_for_status()


def test_response_urls_act_like_slack(slack: SlackEmulator) -> None:
    message = slack.add_message(channel="C0ALERTS", text="Deploy 1.5.0 to prod?")
    on_message = slack.response_url(channel="C0ALERTS", user="U0ALICE", message_ts=message.ts)
    post(on_message, {"text": "just for you"})
    assert [e.text for e in slack.ephemerals] == ["just for you"]
    assert slack.ephemerals[0].user == "U0ALICE"

    post(on_message, {"text": "Deploying 1.5.0…", "replace_original": True})
    assert message.text == "Deploying 1.5.0…" and message.updates == 1

    post(on_message, {"text": "for everyone", "response_type": "in_channel"})
    assert [m.text for m in slack.channel_messages("C0ALERTS")][-1] == "for everyone"

    command = slack.response_url(channel="C0ALERTS", user="U0BOB")
    post(command, {"text": "working…"})
    post(command, {"text": "done", "replace_original": True})
    mine = [e for e in slack.ephemerals if e.user == "U0BOB"]
    assert [(e.text, e.updates) for e in mine] == [("done", 1)]

    on_ephemeral = slack.response_url(channel="C0ALERTS", user="U0BOB", ephemeral_id=mine[0].id)
    post(on_ephemeral, {"delete_original": True})
    assert mine[0].deleted

    post(on_message, {"delete_original": True})
    assert message not in slack.channel_messages("C0ALERTS")
    # A response_url handed out without an origin is only recorded, as before.
    post(slack.response_url(), {"text": "recorded"})
    assert slack.responses[-1]["text"] == "recorded"


def test_the_role_manager_stand_in_repairs_once_then_has_nothing_to_do() -> None:
    staging = stand_ins()["checkout-staging-role-manager"]
    check = staging.invoke({"action": "check"})
    assert check["ok"] is False and check["changed"] == []
    assert set(check) == {
        "action",
        "ok",
        "changed",
        "roles",
        "schema",
        "tables_reachable",
        "tables",
        "warnings",
        "errors",
    }
    first = staging.invoke({"action": "manage"})
    assert first["ok"] and len(first["changed"]) > 5
    assert staging.invoke({"action": "manage"})["changed"] == []
    assert staging.invoke({"action": "check"})["ok"]
    assert stand_ins()["checkout-prod-role-manager"].invoke({"action": "check"})["ok"]
    assert "unknown action" in staging.invoke({})["errors"][0]


def test_an_appconfig_deployment_follows_its_strategy_on_the_clock() -> None:
    now = [1000.0]
    gaps = AppConfigGaps(minute_s=1.0, clock=lambda: now[0])
    strategy = Strategy(
        "s1", "linear", duration_min=4, growth_factor=25, growth_type="LINEAR", bake_min=2
    )
    deployment = Deployment("app", "env", 1, strategy, "prof", "flags", "2", None, "", 1000.0)
    assert gaps._state(deployment)[:2] == ("DEPLOYING", 25.0)
    now[0] = 1002.5
    assert gaps._state(deployment)[:2] == ("DEPLOYING", 75.0)
    now[0] = 1004.5
    assert gaps._state(deployment)[:2] == ("BAKING", 100.0)
    now[0] = 1006.0
    assert gaps._state(deployment) == ("COMPLETE", 100.0, 1006.0)
    stopped = Deployment("app", "env", 2, strategy, "prof", "flags", "3", None, "", 1000.0, 1001.0)
    assert gaps._state(stopped)[0] == "ROLLED_BACK"
