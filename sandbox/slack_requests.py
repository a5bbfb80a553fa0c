"""Requests as Slack sends them to an app: signed slash commands and button clicks.

The tests and the sandbox console use these to talk to opsbot's /slack/events
exactly as Slack would: form-encoded bodies, `v0` HMAC-SHA256 signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

TEAM_ID = "T0000"
APP_ID = "A0OPSBOT"


def signature(secret: str, timestamp: int, body: str) -> str:
    """`v0=` + hex HMAC-SHA256 of `v0:<timestamp>:<body>`, keyed with the signing secret."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(secret, timestamp, body),
    }


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
