"""The configuration file: valid files load; bad ones name the key and why; the CLI exits 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.cli import main
from bot.config import (
    PAGERDUTY_ROUTE,
    ConfigError,
    RouteGone,
    load_config,
    load_config_text,
    parse_config,
)

GOOD = """
alarm_routes:
  - match: {alarm_name: "prod-*", account: "123456789012", region: "us-east-1"}
    channel: C0PRODALERTS
    pagerduty_routing_key_env: PD_KEY_PROD
    severity: critical
    mention: "<!subteam^S0ONCALL>"
  - match: {}
    channel: C0ALERTS
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, source="test.yaml")
    return caught.value.problems


def test_the_issue_example_is_valid() -> None:
    config = load_config_text(GOOD, source="test.yaml")
    assert [r.channel for r in config.alarm_routes] == ["C0PRODALERTS", "C0ALERTS"]
    assert config.alarm_routes[0].severity == "critical"
    assert config.routing_key_envs() == {"PD_KEY_PROD"}


def test_embedded_default_configuration_is_valid() -> None:
    config = load_config(None)
    assert config.alarm_routes[-1].match.is_catch_all


def test_bad_severity_names_the_key() -> None:
    assert problems(GOOD.replace("severity: critical", "severity: urgent")) == [
        "alarm_routes[0].severity: Input should be 'critical', 'error', 'warning' or 'info'"
    ]


def test_unknown_key_is_named() -> None:
    assert problems(GOOD.replace("mention:", "mentions:")) == [
        "alarm_routes[0].mentions: unknown key"
    ]


def test_routing_key_env_must_be_a_variable_name() -> None:
    [problem] = problems(GOOD.replace("PD_KEY_PROD", "not a variable"))
    assert problem.startswith("alarm_routes[0].pagerduty_routing_key_env: must be the name")


def test_last_rule_must_catch_everything() -> None:
    text = GOOD.replace("  - match: {}\n    channel: C0ALERTS\n", "")
    [problem] = problems(text)
    assert "the last rule must match everything" in problem


def test_routes_known_by_one_name_must_agree_on_rights() -> None:
    # An incident keeps its route's name (a route without one: its channel), and its
    # rights are found by it: two routes by one name differing in rights would be one.
    shared_channel = """
alarm_routes:
  - match: {alarm_name: "prod-*"}
    channel: C0ALERTS
    pagerduty_routing_key_env: PD_KEY_PROD
    rights: {respond: {groups: [S0ONCALL]}}
  - match: {}
    channel: C0ALERTS
"""
    [problem] = problems(shared_channel)
    assert "alarm_routes[0] and alarm_routes[1]" in problem and "'C0ALERTS'" in problem
    assert "differ in rights" in problem
    named = shared_channel.replace("  - match: {}\n", "  - match: {}\n    name: rest\n")
    assert [r.label for r in load_config_text(named, source="test.yaml").alarm_routes] == [
        "C0ALERTS",
        "rest",
    ]
    # Routes that only route differently may share a channel, and so a name.
    same_rights = shared_channel.replace("    rights: {respond: {groups: [S0ONCALL]}}\n", "")
    routes = load_config_text(same_rights, source="test.yaml").alarm_routes
    assert [r.label for r in routes] == ["C0ALERTS", "C0ALERTS"]


def test_missing_channel_is_named() -> None:
    assert problems("alarm_routes:\n  - match: {}\n") == ["alarm_routes[0].channel: Field required"]


def test_broken_yaml_says_where() -> None:
    [problem] = problems("alarm_routes: [\n  - oops")
    assert problem.startswith("line ")


def test_empty_file() -> None:
    assert problems("") == ["(top level): the file is empty"]


def test_check_config_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    assert main(["check-config", str(good)]) == 0
    assert "valid (2 alarm routes, 0 apps with 0 environments)" in capsys.readouterr().out

    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("severity: critical", "severity: urgent"))
    with pytest.raises(SystemExit) as exited:
        main(["check-config", str(bad)])
    assert exited.value.code == 2
    assert "alarm_routes[0].severity" in capsys.readouterr().err


def test_check_config_as_a_command(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "bot.cli", "check-config", str(missing)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "cannot be read" in result.stderr


def test_lease_must_outlive_requests() -> None:
    [problem] = problems(GOOD + "delivery: {lease_s: 10, request_timeout_s: 10}\n")
    assert problem == "delivery: lease_s must be at least twice request_timeout_s"


def test_each_method_has_its_own_pace_and_a_pace_of_zero_is_refused() -> None:
    delivery = load_config_text(GOOD, source="test.yaml").delivery
    assert (delivery.slack_per_channel_per_s, delivery.slack_burst) == (1.0, 4)
    assert (delivery.slack_updates_per_min, delivery.slack_updates_burst) == (50.0, 50)
    assert (delivery.pagerduty_rest_per_min, delivery.pagerduty_rest_burst) == (960.0, 60)
    [problem] = problems(GOOD + "delivery: {slack_updates_per_min: 0}\n")
    assert problem.startswith("delivery.slack_updates_per_min:")


def test_rights_default_to_the_channel_and_a_route_replaces_whole_entries() -> None:
    config = parse_config(
        {
            "alarm_routes": [
                {
                    "name": "prod",
                    "match": {"alarm_name": "prod-*"},
                    "channel": "C0PRODALERTS",
                    "rights": {"respond": {"groups": ["S0ONCALL"]}, "guests": True},
                },
                {"match": {}, "channel": "C0ALERTS"},
            ]
        }
    )
    default = config.incident_rights("C0ALERTS")
    assert default.respond.channel_members and not default.respond.groups
    assert default.declare.everyone and not default.guests
    assert default.silence.max_min == 1440
    prod = config.incident_rights("prod")
    assert prod.respond.groups == ["S0ONCALL"] and not prod.respond.channel_members
    assert prod.guests and prod.silence == default.silence
    # Incidents of no route (opened in PagerDuty by others): the defaults.
    assert not config.route_gone(None) and not config.route_gone(PAGERDUTY_ROUTE)
    assert config.incident_rights(None) == config.incident_rights(PAGERDUTY_ROUTE) == default
    # A route that no longer exists (config changed since the incident opened): no rights
    # at all, not the defaults, which may grant what the route did not.
    assert config.route_gone("gone")
    with pytest.raises(RouteGone):
        config.incident_rights("gone")


@pytest.mark.parametrize(
    ("rights", "problem"),
    [
        ({"cli": {"octocat": "U0ALICE"}}, "rights.cli.octocat"),
        ({"cli": {"github:octocat": "alice"}}, "rights.cli.github:octocat"),
        ({"admins": {"users": ["alice"]}}, "rights.admins.users[0]"),
        ({"incidents": {"silence": {"max_min": 0}}}, "rights.incidents.silence.max_min"),
        ({"incidents": {"respond": {"anyone": True}}}, "rights.incidents.respond.anyone"),
        ({"cli_github": {"repositories": ["acme"]}}, "rights.cli_github.repositories[0]"),
        ({"cli_github": {"issuer": "http://token.example"}}, "rights.cli_github.issuer"),
    ],
)
def test_bad_rights_are_named(rights: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"alarm_routes": [{"match": {}, "channel": "C0ALERTS"}], "rights": rights})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_check_config_notes_rights_nobody_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "rights.yaml"
    path.write_text(
        GOOD + "rights:\n  incidents:\n    declare: {}\n  cli: {'github:octocat': U0ALICE}\n",
        encoding="utf-8",
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: rights.incidents.declare names nobody: nobody may declare" in out
    assert "note: rights.admins is empty" in out
    assert "act on the open incidents of a route once it is renamed or removed" in out
    assert "note: rights.cli maps github:octocat but rights.cli_github.repositories is empty" in out
