"""Silence refused at the door: a route that cannot page, a channel Slack does not have."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.adapters import slack as slack_adapter
from bot.adapters import tls
from bot.cli import main
from bot.config import parse_config
from bot.ops.preflight import preflight
from bot.settings import Settings
from sandbox.slack import SlackEmulator
from tests.conftest import PD_ROUTING_KEY, SLACK_TOKEN, TEST_CONFIG

ROOT = Path(__file__).resolve().parents[2]


def client(url: str) -> Any:
    return slack_adapter.web_client(
        token=SLACK_TOKEN, base_url=url, tls=tls.client_context(None), timeout_s=2, retries=False
    )


def checked(config: dict[str, Any], slack_url: str | None) -> Any:
    settings = Settings()
    return preflight(
        parse_config(config),
        routing_key_set=lambda name: settings.env_secret(name) is not None,
        slack=client(slack_url) if slack_url else None,
    )


def test_a_route_that_pages_needs_its_routing_key_set_and_not_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PD_KEY_EMPTY", "")
    config = {
        "alarm_routes": [
            {"match": {"alarm_name": "a-*"}, "channel": "C0ALERTS", "pagerduty_routing_key_env": "PD_KEY_UNSET"},
            {"match": {"alarm_name": "b-*"}, "channel": "C0ALERTS", "pagerduty_routing_key_env": "PD_KEY_EMPTY"},
            {"match": {"alarm_name": "c-*"}, "channel": "C0ALERTS", "pagerduty_routing_key_env": "PD_KEY_PROD"},
            {"match": {}, "channel": "C0ALERTS"},
        ],
        "ops_pagerduty_routing_key_env": "PD_KEY_OPS_UNSET",
    }  # fmt: skip
    result = checked(config, None)
    assert result.refusals == [
        "alarm_routes[0].pagerduty_routing_key_env: PD_KEY_UNSET is not set or empty "
        "(this route would post and never page)",
        "alarm_routes[1].pagerduty_routing_key_env: PD_KEY_EMPTY is not set or empty "
        "(this route would post and never page)",
        "ops_pagerduty_routing_key_env: PD_KEY_OPS_UNSET is not set or empty "
        "(a refused Slack token would page nobody)",
    ]
    assert "SLACK_BOT_TOKEN is not set: channels not checked" in result.warnings


def test_a_route_that_escalates_needs_the_pagerduty_api_token() -> None:
    config = parse_config(
        {
            "alarm_routes": [
                {
                    "match": {"alarm_name": "a-*"},
                    "channel": "C0ALERTS",
                    "pagerduty_routing_key_env": "PD_KEY_PROD",
                    "remind_after_min": 5,
                    "escalate_after_min": 15,
                },
                {"match": {}, "channel": "C0ALERTS", "pagerduty_routing_key_env": "PD_KEY_PROD"},
            ],
            "oncall": {"pagerduty_from": "opsbot@example.com"},
        }
    )
    without = preflight(config, routing_key_set=lambda _: True, slack=None, pagerduty_api=False)
    assert without.refusals == [
        "alarm_routes[0].escalate_after_min: PAGERDUTY_API_TOKEN is not set (opsbot escalates "
        "through PagerDuty's REST API: its reminders would promise an escalation that never "
        "comes)"
    ]
    assert preflight(config, routing_key_set=lambda _: True, slack=None).refusals == []


def test_every_configured_channel_must_exist_in_slack(slack: SlackEmulator) -> None:
    slack.add_channel("C0RELEASES", "releases")
    config = {
        **TEST_CONFIG,
        "alarm_routes": [
            {"match": {"alarm_name": "prod-*"}, "channel": "#prod-alerts"},
            {"match": {"alarm_name": "x-*"}, "channel": "C0GONEAWAY"},
            {"match": {}, "channel": "#nope"},
        ],
        "alarms": {"notices_channel": "C0ALERTS"},
        "oncall": {
            "pagerduty_channel": "#oncall-missing",
            "teams": {"sre": {"schedules": ["PSCHED"]}},
            "handoffs": [{"channel": "#releases", "at": "09:00", "team": "sre"}],
        },
        "apps": {
            "api": {
                "environments": {
                    "prod": {
                        "cluster": "c", "service": "s", "container": "c", "repository": "r",
                        "release_channel": "C0NORELEASE",
                    }
                }
            }
        },
        "ops_channel": "#ops-missing",
    }  # fmt: skip
    result = checked(config, slack.api_url)
    assert result.refusals == [
        "alarm_routes[1].channel: C0GONEAWAY does not exist in Slack",
        "alarm_routes[2].channel: #nope does not exist in Slack",
        "oncall.pagerduty_channel: #oncall-missing does not exist in Slack",
        "apps.api.environments.prod.release_channel: C0NORELEASE does not exist in Slack",
        "ops_channel: #ops-missing does not exist in Slack",
    ]
    assert result.warnings == []
    # One listing for every #name, one conversations.info per id.
    assert len(slack.calls_to("conversations.list")) == 1


def test_slack_unreachable_or_refusing_the_token_only_warns(slack: SlackEmulator) -> None:
    config = {**TEST_CONFIG, "ops_channel": "#nope"}
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    unreachable = checked(config, f"http://127.0.0.1:{port}/api/")
    assert unreachable.ok
    assert any("Slack is unreachable" in w for w in unreachable.warnings)

    slack.token = "xoxb-revoked"
    refused = checked(config, slack.api_url)
    assert refused.ok and refused.slack_token_refused
    assert any("`invalid_auth`" in w for w in refused.warnings)


def test_check_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PD_KEY_PROD")
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(TEST_CONFIG), encoding="utf-8")
    assert main(["check-config", str(path)]) == 2
    said = capsys.readouterr()
    assert "alarm_routes[0].pagerduty_routing_key_env: PD_KEY_PROD is not set" in said.err
    assert f"{path}: refused: opsbot serve would not start with it" in said.err
    assert "valid" not in said.out  # never "valid", then exit 2
    monkeypatch.setenv("PD_KEY_PROD", PD_ROUTING_KEY)
    assert main(["check-config", str(path)]) == 0
    assert f"{path}: valid (" in capsys.readouterr().out


def test_check_config_offline_lists_the_secrets_the_service_needs_instead_of_refusing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    slack: SlackEmulator,
) -> None:
    """As the deploy workflow runs it: none of the service's secrets are set there."""
    monkeypatch.delenv("PD_KEY_PROD")
    # A token in this environment is not used: offline asks Slack nothing.
    monkeypatch.setenv("SLACK_BOT_TOKEN", SLACK_TOKEN)
    monkeypatch.setenv("SLACK_API_URL", slack.api_url)
    config = {
        **TEST_CONFIG,
        "alarm_routes": [
            {**TEST_CONFIG["alarm_routes"][0], "remind_after_min": 5, "escalate_after_min": 15},
            {"name": "db", "match": {"alarm_name": "db-*"}, "channel": "#nope",
             "pagerduty_routing_key_env": "PD_KEY_PROD"},
            TEST_CONFIG["alarm_routes"][1],
        ],
        "oncall": {"pagerduty_from": "opsbot@example.com"},
        "ops_pagerduty_routing_key_env": "PD_KEY_OPS",
    }  # fmt: skip
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    assert main(["check-config", "--offline", str(path)]) == 0
    said = capsys.readouterr()
    assert said.err == ""
    lines = said.out.splitlines()
    assert lines[0] == (
        f"{path}: valid (3 alarm routes, 0 apps with 0 environments, checked offline)"
    )
    assert "note: offline: channels not looked for in Slack" in lines
    start = lines.index("where opsbot runs, these must be set and not empty:")
    assert lines[start + 1 :] == [
        "  PAGERDUTY_API_TOKEN (alarm_routes[0].escalate_after_min)",
        "  PD_KEY_OPS (ops_pagerduty_routing_key_env)",
        "  PD_KEY_PROD (alarm_routes[0].pagerduty_routing_key_env, "
        "alarm_routes[1].pagerduty_routing_key_env)",
    ]
    assert slack.calls_to("conversations.list") == []
    assert slack.calls_to("conversations.info") == []

    # A file that does not validate is refused offline as well, naming the key.
    path.write_text(yaml.safe_dump(config).replace("critical", "urgent"), encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        main(["check-config", "--offline", str(path)])
    assert exited.value.code == 2
    assert "alarm_routes[0].severity" in capsys.readouterr().err


def test_the_deploy_workflow_checks_a_config_that_pages_without_the_services_secrets(
    tmp_path: Path,
) -> None:
    """Its step, run as written, where none of the routing keys the file names is set."""
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text(encoding="utf-8"))
    [step] = [
        step
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "check-config" in step.get("run", "")
    ]
    command = step["run"].replace(".venv-deploy/bin/opsbot", f"{sys.executable} -m bot.cli")
    config = {**TEST_CONFIG, "ops_pagerduty_routing_key_env": "PD_KEY_OPS"}
    (tmp_path / "infra/envs/prod").mkdir(parents=True)
    (tmp_path / "infra/envs/prod/opsbot.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "DEPLOY_ENV": "prod"}
    result = subprocess.run(
        ["bash", "-c", command],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "PD_KEY_OPS (ops_pagerduty_routing_key_env)" in result.stdout
    assert "PD_KEY_PROD (alarm_routes[0].pagerduty_routing_key_env)" in result.stdout


def serve(
    tmp_path: Path, slack: SlackEmulator, config: dict[str, Any], *args: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "opsbot.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'opsbot.db'}",
        "OPSBOT_CONFIG": str(path),
        "SLACK_BOT_TOKEN": SLACK_TOKEN,
        "SLACK_API_URL": slack.api_url,
        "PD_KEY_PROD": PD_ROUTING_KEY,
        "PORT": "9",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--host", "127.0.0.1", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_serve_refuses_to_start_on_a_missing_channel(tmp_path: Path, slack: SlackEmulator) -> None:
    config = {**TEST_CONFIG, "ops_channel": "#prod-alerts-typo"}
    result = serve(tmp_path, slack, config)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "ops_channel: #prod-alerts-typo does not exist in Slack" in result.stderr
    assert not (tmp_path / "opsbot.db").exists()  # refused before anything else


def test_serve_refuses_a_metrics_port_in_use_in_one_line(
    tmp_path: Path, slack: SlackEmulator
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve(tmp_path, slack, TEST_CONFIG, "--metrics-port", str(port))
    assert result.returncode == 2, result.stderr[-2000:]
    [line] = [line for line in result.stderr.splitlines() if "metrics" in line]
    assert line.startswith("opsbot serve: cannot serve metrics on ")
    assert f":{port}: it is already in use" in line
