"""Requests as Slack sends them to an app: slash commands, button clicks, events, signed.

The tests, `bench/` and the sandbox console use these to talk to opsbot's
/slack/events exactly as Slack would. The signature is slack_sdk's own
(`SignatureVerifier.generate_signature`, the code Bolt verifies with), so a
request signed here holds for exactly the reason a real one does.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

TEAM_ID = "T0000"
APP_ID = "A0OPSBOT"
FORM = "application/x-www-form-urlencoded"  # commands and interactions
JSON = "application/json"  # Events API deliveries


class RequestSigner:
    """Signs request bodies with one app's signing secret; build once, sign many."""

    def __init__(self, signing_secret: str) -> None:
        self._verifier = SignatureVerifier(signing_secret)

    def signature(self, body: str, *, timestamp: int) -> str:
        """`v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>`, as Slack computes it."""
        signature = self._verifier.generate_signature(timestamp=str(timestamp), body=body)
        if signature is None:  # slack_sdk returns None only when the timestamp is None
            raise ValueError("no timestamp to sign")
        return signature

    def headers(
        self, body: str, *, timestamp: int | None = None, content_type: str = FORM
    ) -> dict[str, str]:
        """The headers Slack sends with `body`, signed at `timestamp` (default: now)."""
        timestamp = int(time.time()) if timestamp is None else timestamp
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(timestamp),
            "X-Slack-Signature": self.signature(body, timestamp=timestamp),
        }


def signature(secret: str, timestamp: int, body: str) -> str:
    """The `X-Slack-Signature` of `body` sent at `timestamp`."""
    return RequestSigner(secret).signature(body, timestamp=timestamp)


def signed_headers(
    secret: str, body: str, *, timestamp: int | None = None, content_type: str = FORM
) -> dict[str, str]:
    """The headers Slack sends with `body`; see `RequestSigner.headers`."""
    return RequestSigner(secret).headers(body, timestamp=timestamp, content_type=content_type)


def slash_command(
    command: str,
    text: str,
    *,
    user_id: str,
    user_name: str | None = None,
    channel_id: str,
    channel_name: str = "",
    response_url: str,
    trigger_id: str = "1337.42.abcd",
) -> str:
    """The form body of a slash command invocation."""
    return urlencode(
        {
            "token": "legacy-ignored",
            "team_id": TEAM_ID,
            "team_domain": "sandbox",
            "channel_id": channel_id,
            "channel_name": channel_name,
            "user_id": user_id,
            "user_name": user_name or user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": APP_ID,
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def block_action(
    action_id: str,
    value: str | None,
    *,
    user_id: str,
    user_name: str | None = None,
    channel_id: str,
    channel_name: str = "",
    message_ts: str,
    response_url: str,
    block_id: str = "b",
    selected_option: str | None = None,
    message: dict[str, Any] | None = None,
    is_ephemeral: bool = False,
    trigger_id: str = "1337.42.abcd",
) -> str:
    """The form body of a button click; with `selected_option`, a choice in a select menu."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if value is not None:
        action["value"] = value
    if selected_option is not None:
        action = {
            "action_id": action_id,
            "block_id": block_id,
            "type": "static_select",
            "selected_option": {
                "text": {"type": "plain_text", "text": selected_option},
                "value": selected_option,
            },
            "action_ts": f"{time.time():.6f}",
        }
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "sandbox"},
        "user": {
            "id": user_id,
            "username": user_name or user_id.lower(),
            "name": user_name or user_id.lower(),
            "team_id": TEAM_ID,
        },
        "api_app_id": APP_ID,
        "token": "legacy-ignored",
        "container": {
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": is_ephemeral,
        },
        "trigger_id": trigger_id,
        "channel": {"id": channel_id, "name": channel_name},
        "message": message or {"type": "message", "ts": message_ts, "text": ""},
        "response_url": response_url,
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)})


def event_callback(event: dict[str, Any], *, event_id: str, team_id: str = TEAM_ID) -> str:
    """The JSON body of an Events API delivery (`event_callback`); send it as `JSON`."""
    return json.dumps(
        {
            "token": "legacy-ignored",
            "team_id": team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team_id, "user_id": "U0OPSBOT", "is_bot": True}],
        }
    )
