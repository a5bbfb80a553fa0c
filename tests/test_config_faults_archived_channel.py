"""A configured channel that is archived is refused at start, given by id as by `#name`:
Slack answers `conversations.info` for it, then refuses every post there."""

from __future__ import annotations

from typing import Any

from bot.adapters import slack as slack_adapter
from bot.adapters import tls
from bot.config import parse_config
from bot.ops.preflight import preflight
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_TOKEN, TEST_CONFIG


def client(url: str) -> Any:
    return slack_adapter.web_client(
        token=SLACK_TOKEN, base_url=url, tls=tls.client_context(None), timeout_s=2, retries=False
    )


def test_an_archived_channel_given_by_id_is_refused_naming_the_key(slack: SlackEmulator) -> None:
    slack.add_channel("C0ARCHIVED1", "old-alerts")
    slack.add_channel("C0OPSALERTS", "ops-alerts")
    web = client(slack.api_url)
    web.conversations_archive(channel="C0ARCHIVED1")
    config = {
        **TEST_CONFIG,
        "alarm_routes": [
            {"match": {"alarm_name": "prod-*"}, "channel": "C0ARCHIVED1"},
            {"match": {}, "channel": "C0ALERTS"},
        ],
        "ops_channel": "C0ARCHIVED1",
    }
    result = preflight(parse_config(config), routing_key_set=lambda _: True, slack=web)
    assert result.refusals == [
        "alarm_routes[0].channel: C0ARCHIVED1 is archived (Slack refuses every post there)",
        "ops_channel: C0ARCHIVED1 is archived (Slack refuses every post there)",
    ]
    assert result.warnings == []


def test_a_live_channel_given_by_id_still_passes(slack: SlackEmulator) -> None:
    slack.add_channel("C0LIVEALERTS", "live-alerts")
    config = {**TEST_CONFIG, "alarm_routes": [{"match": {}, "channel": "C0LIVEALERTS"}]}
    result = preflight(
        parse_config(config), routing_key_set=lambda _: True, slack=client(slack.api_url)
    )
    assert result.ok and result.warnings == []


def test_an_archived_channel_given_by_name_is_refused_as_missing(slack: SlackEmulator) -> None:
    # Slack leaves archived channels out of a listing that asks it to: the name is unknown.
    slack.add_channel("C0ARCHIVED2", "older-alerts")
    web = client(slack.api_url)
    web.conversations_archive(channel="C0ARCHIVED2")
    config = {
        **TEST_CONFIG,
        "alarm_routes": [
            {"match": {"alarm_name": "prod-*"}, "channel": "#older-alerts"},
            {"match": {}, "channel": "C0ALERTS"},
        ],
    }
    result = preflight(parse_config(config), routing_key_set=lambda _: True, slack=web)
    assert [r.split(":")[0] for r in result.refusals] == ["alarm_routes[0].channel"]
    assert "#older-alerts" in result.refusals[0]
