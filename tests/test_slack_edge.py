"""/slack/events: Bolt verifies every request; /opsbot answers with its usage.

`/opsbot help` itself: tests/test_commands.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.config import Config
from bot.settings import Settings
from tests.conftest import SLACK_SIGNING_SECRET
from tests.support import (
    LiveService,
    metric,
    slack_headers,
    slack_signature,
    slash_command_body,
)


def test_slack_docs_signature_example() -> None:
    body = (
        "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        "&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        "&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    assert slack_signature(SLACK_SIGNING_SECRET, 1531420618, body) == (
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    )


def test_mistyped_subcommand_gets_the_usage(service: LiveService) -> None:
    body = slash_command_body("/opsbot", "hlep")
    answer = service.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert answer.status_code == 200
    text = answer.text
    assert "Unknown subcommand `hlep`" in text and "/opsbot help" in text


def test_forged_signature_gets_401(service: LiveService) -> None:
    body = slash_command_body("/opsbot", "help")
    answer = service.post(
        "/slack/events", content=body, headers=slack_headers("not-the-secret", body)
    )
    assert answer.status_code == 401


def test_stale_timestamp_gets_401(service: LiveService) -> None:
    body = slash_command_body("/opsbot", "help")
    headers = slack_headers(SLACK_SIGNING_SECRET, body, timestamp=int(time.time()) - 600)
    assert service.post("/slack/events", content=body, headers=headers).status_code == 401


def test_body_changed_after_signing_gets_401(service: LiveService) -> None:
    body = slash_command_body("/opsbot", "help")
    headers = slack_headers(SLACK_SIGNING_SECRET, body)
    assert service.post("/slack/events", content=body + "&x=1", headers=headers).status_code == 401


def test_slack_not_configured_answers_503(
    settings: Settings, config: Config, make_service: Callable[..., LiveService]
) -> None:
    service = make_service(settings.model_copy(update={"slack_signing_secret": None}), config)
    body = slash_command_body("/opsbot", "help")
    answer = service.post(
        "/slack/events", content=body, headers=slack_headers(SLACK_SIGNING_SECRET, body)
    )
    assert answer.status_code == 503


def test_replayed_request_is_refused_and_changes_nothing(service: LiveService) -> None:
    body = slash_command_body("/opsbot", "help")
    headers = slack_headers(SLACK_SIGNING_SECRET, body)
    assert service.post("/slack/events", content=body, headers=headers).status_code == 200
    assert service.post("/slack/events", content=body, headers=headers).status_code == 401
    refused = {"reason": "replayed"}
    assert metric(service, "opsbot_slack_admission_refused_total", **refused) == 1
    fresh = slack_headers(SLACK_SIGNING_SECRET, body, timestamp=int(time.time()) + 1)
    assert service.post("/slack/events", content=body, headers=fresh).status_code == 200
