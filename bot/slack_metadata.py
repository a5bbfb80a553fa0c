"""Slack message metadata that marks what opsbot posted, so a retry can find it.

A post that may have reached Slack before its sender died (or timed out) is
looked for, by its mark, in what the channel or thread holds before it is
posted again: the outbox marks each delivery, an incident channel's start its
summary. Slack returns the marks only to `include_all_metadata=true`.

A mark is anyone's to copy: any app or person in the channel can post a message
with the same metadata, and the numbers in it are easy to guess. A marked message
is opsbot's only when opsbot's own bot posted it: Slack sets the `bot_id` of a
message posted with a bot token, and no one else can set it. Which bot a token
is, Slack says in `auth.test`, asked once a token, the first time it matters.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

from slack_sdk import WebClient

log = logging.getLogger(__name__)

# (API URL, the token's hash) -> the id of the bot the token is: a token never changes bots.
_bots: dict[tuple[str, str], str] = {}
_bots_lock = threading.Lock()


def marked(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The `metadata` argument of a post carrying this mark."""
    return {"event_type": event_type, "event_payload": payload}


def carries(
    message: dict[str, Any], event_type: str, payload: dict[str, Any], slack: WebClient
) -> bool:
    """Whether a message as Slack lists it carries this mark, posted by the bot of `slack`.

    The first marked message a token meets asks Slack which bot the token is
    (auth.test): that raises what `slack` raises when Slack does not say.
    """
    meta = message.get("metadata") or {}
    found = meta.get("event_payload") or {}
    if meta.get("event_type") != event_type or any(
        found.get(key) != value for key, value in payload.items()
    ):
        return False
    own = own_bot_id(slack)
    if own is not None and message.get("bot_id") == own:
        return True
    log.warning(
        "a message carries opsbot's mark %s %s but another posted it: not taken as opsbot's",
        event_type,
        payload,
        extra={
            "slack_ts": message.get("ts"),
            "slack_user": message.get("user"),
            "slack_bot_id": message.get("bot_id"),
            "mark": event_type,
        },
    )
    return False


def own_bot_id(slack: WebClient) -> str | None:
    """The id of the bot whose token `slack` holds (auth.test, asked once a token).

    None when the token is no bot's (a user token): then no message is opsbot's.
    """
    key = (slack.base_url, hashlib.sha256((slack.token or "").encode()).hexdigest())
    with _bots_lock:
        known = _bots.get(key)
    if known is not None:
        return known
    answer = slack.auth_test()
    bot_id = answer.get("bot_id")
    if not bot_id:
        log.warning("auth.test names no bot for opsbot's Slack token: no message is taken as its")
        return None
    with _bots_lock:
        _bots[key] = str(bot_id)
    return str(bot_id)
