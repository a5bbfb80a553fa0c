"""The Slack app manifest: every command, only the scopes the bot uses, one request URL."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.manifest import build_manifest

BASE_URL = "https://opsbot.example.com"


def test_committed_manifest_matches_build_manifest(infra_repo: Path) -> None:
    committed = yaml.safe_load((infra_repo / "slack" / "manifest.yaml").read_text())
    assert committed == build_manifest(BASE_URL), (
        "slack/manifest.yaml is stale: regenerate it from bot.manifest.build_manifest"
    )


def test_every_command_and_url_points_at_slack_events() -> None:
    manifest = build_manifest(BASE_URL + "/")
    commands = manifest["features"]["slash_commands"]
    assert [c["command"] for c in commands] == [
        "/opsbot", "/incident", "/oncall", "/deploy", "/rollback", "/releases", "/flag", "/dbrole",
    ]  # fmt: skip
    url = "https://opsbot.example.com/slack/events"
    assert {c["url"] for c in commands} == {url}
    assert manifest["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": url,
        "message_menu_options_url": url,  # the modals' searches (block_suggestion)
    }
    assert manifest["settings"]["event_subscriptions"] == {
        "request_url": url,
        "bot_events": ["app_mention", "app_home_opened"],
    }
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    assert all(len(c["description"]) <= 100 for c in commands)


def test_bot_scopes_are_only_what_the_bot_uses() -> None:
    assert set(build_manifest(BASE_URL)["oauth_config"]["scopes"]["bot"]) == {
        "app_mentions:read",  # @opsbot who is on call (handlers/oncall.py)
        "chat:write",
        "chat:write.public",
        "commands",
        "users:read",
        "users:read.email",
        "usergroups:read",
        "channels:read",  # rights: who is in an incident's channel (bot/rights/)
        "groups:read",  # ... and whether it is private (who may see its incidents)
        "channels:history",
        "groups:history",
        "channels:manage",  # an incident's own channel: create, invite, topic, archive
        "groups:write",  # ... a private one for an incident of a private channel
        "pins:write",  # ... and its pinned summary (bot/incidents/channels.py)
    }
    assert "user" not in build_manifest(BASE_URL)["oauth_config"]["scopes"]


def test_a_path_prefix_is_kept() -> None:
    manifest = build_manifest("https://example.com/bots/opsbot")
    assert manifest["settings"]["interactivity"]["request_url"] == (
        "https://example.com/bots/opsbot/slack/events"
    )


@pytest.mark.parametrize(
    "url", ["http://opsbot.example.com", "opsbot.example.com", "https://", "https://x/?a=1"]
)
def test_non_https_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"https|query"):
        build_manifest(url)
