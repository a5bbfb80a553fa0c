"""The Slack requests the acknowledgement benchmark sends, and their signatures.

`KINDS` is the table the benchmark reads: each row is one kind of request,
sent in equal shares. A kind whose command or action opsbot does not handle
yet (Bolt answers 404) is reported as skipped, not measured; once opsbot
registers it, it is measured with no change here. A new kind is one row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlencode


@dataclass(frozen=True)
class RequestKind:
    name: str
    command: str | None = None  # a slash command ...
    text: str = ""
    action_id: str | None = None  # ... or a button's action_id
    value: str = ""

    def body(self, response_url: str, *, trigger_id: str = "1337.42.bench") -> str:
        """One request; Slack gives each a trigger_id of its own, so bodies never repeat."""
        if self.command is not None:
            return slash_command_body(
                self.command, self.text, response_url=response_url, trigger_id=trigger_id
            )
        assert self.action_id is not None
        return block_actions_body(
            self.action_id, self.value, response_url=response_url, trigger_id=trigger_id
        )


KINDS: tuple[RequestKind, ...] = (
    RequestKind("slash /opsbot help", command="/opsbot", text="help"),
    RequestKind("button Acknowledge", action_id="incident_acknowledge", value="1"),
    RequestKind("button Resolve", action_id="incident_resolve", value="1"),
)


def kind_named(name: str) -> RequestKind:
    for kind in KINDS:
        if kind.name == name:
            return kind
    raise KeyError(name)


def signature(secret: str, timestamp: int, body: str) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(secret: str, body: str, *, timestamp: int | None = None) -> dict[str, str]:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": signature(secret, timestamp, body),
    }


def slash_command_body(
    command: str, text: str, *, response_url: str, trigger_id: str, user_id: str = "U0ALICE"
) -> str:
    return urlencode(
        {
            "team_id": "T0000",
            "team_domain": "sandbox",
            "channel_id": "C0BENCHALERTS",
            "channel_name": "alerts",
            "user_id": user_id,
            "user_name": user_id.lower(),
            "command": command,
            "text": text,
            "api_app_id": "A0OPSBOT",
            "response_url": response_url,
            "trigger_id": trigger_id,
        }
    )


def block_actions_body(
    action_id: str, value: str, *, response_url: str, trigger_id: str, user_id: str = "U0ALICE"
) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T0000", "domain": "sandbox"},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": "T0000"},
        "api_app_id": "A0OPSBOT",
        "container": {
            "type": "message",
            "message_ts": "1.000001",
            "channel_id": "C0BENCHALERTS",
            "is_ephemeral": False,
        },
        "trigger_id": trigger_id,
        "channel": {"id": "C0BENCHALERTS", "name": "alerts"},
        "message": {"type": "message", "ts": "1.000001", "text": ""},
        "response_url": response_url,
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"incident:{value}",
                "value": value,
                "type": "button",
                "action_ts": "1.000002",
            }
        ],
    }
    return urlencode({"payload": json.dumps(payload)})
