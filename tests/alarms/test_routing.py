"""Routing rules: first match wins, globs on each key, a catch-all last."""

from __future__ import annotations

from bot.alarms.routing import route_for
from bot.config import parse_config

CONFIG = parse_config(
    {
        "alarm_routes": [
            {
                "name": "prod-east",
                "match": {"alarm_name": "prod-*", "region": "us-east-1"},
                "channel": "C0EAST000",
            },
            {"name": "prod", "match": {"alarm_name": "prod-*"}, "channel": "C0PROD000"},
            {"name": "billing", "match": {"account": "2222*"}, "channel": "#billing"},
            {"name": "default", "match": {}, "channel": "#alerts"},
        ]
    }
)


def route(name: str, account: str = "123456789012", region: str = "us-east-1") -> str | None:
    return route_for(CONFIG.alarm_routes, alarm_name=name, account=account, region=region).name


def test_first_matching_rule_wins() -> None:
    assert route("prod-api-5xx") == "prod-east"
    assert route("prod-api-5xx", region="eu-west-1") == "prod"


def test_globs_apply_to_accounts() -> None:
    assert route("staging-x", account="222233334444") == "billing"


def test_anything_else_goes_to_the_default_rule() -> None:
    assert route("staging-x") == "default"


def test_matching_is_case_sensitive_like_alarm_names() -> None:
    assert route("PROD-api") == "default"
