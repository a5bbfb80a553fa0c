"""Slack message metadata that marks what opsbot posted, so a retry can find it.

A post that may have reached Slack before its sender died (or timed out) is
looked for, by its mark, in what the channel or thread holds before it is
posted again: the outbox marks each delivery, an incident channel's start its
summary. Slack returns the marks only to `include_all_metadata=true`.
"""

from __future__ import annotations

from typing import Any


def marked(event_type: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The `metadata` argument of a post carrying this mark."""
    return {"event_type": event_type, "event_payload": payload}


def carries(message: dict[str, Any], event_type: str, payload: dict[str, Any]) -> bool:
    """Whether a message as Slack lists it carries this mark."""
    meta = message.get("metadata") or {}
    found = meta.get("event_payload") or {}
    return meta.get("event_type") == event_type and all(
        found.get(key) == value for key, value in payload.items()
    )
