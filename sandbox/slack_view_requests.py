"""Requests Slack sends an app about its modals: `view_submission` and `block_suggestion`.

Beside sandbox/slack_requests.py (commands, clicks, events) and signed the same
way (`RequestSigner`). `state_values` fills a view's inputs as a person would,
in the shape Slack reports them (`view.state.values`); tests may hand-craft
hostile state instead.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from sandbox.slack_requests import APP_ID, TEAM_ID


def _user(user_id: str) -> dict[str, Any]:
    return {"id": user_id, "username": user_id.lower(), "name": user_id.lower(), "team_id": TEAM_ID}


def _inputs(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The input blocks' elements by block_id."""
    return {
        str(block.get("block_id")): block.get("element") or {}
        for block in view.get("blocks") or []
        if block.get("type") == "input"
    }


def state_values(view: dict[str, Any], answers: dict[str, str | None]) -> dict[str, Any]:
    """`view.state.values` with each input of `view` answered (by block_id) as Slack reports it."""
    values: dict[str, Any] = {}
    for block_id, element in _inputs(view).items():
        kind = str(element.get("type") or "")
        action_id = str(element.get("action_id") or block_id)
        answer = answers.get(block_id)
        if kind in ("static_select", "external_select"):
            if answer is None:
                entry: dict[str, Any] = {"type": kind, "selected_option": None}
            else:
                labels = {o["value"]: o["text"]["text"] for o in element.get("options") or []}
                entry = {
                    "type": kind,
                    "selected_option": {
                        "text": {"type": "plain_text", "text": labels.get(answer, answer)},
                        "value": answer,
                    },
                }
        else:
            entry = {"type": kind or "plain_text_input", "value": answer}
        values[block_id] = {action_id: entry}
    return values


def view_submission(
    view: dict[str, Any], *, user_id: str, values: dict[str, Any], trigger_id: str = "0.0.0"
) -> str:
    """The form body Slack posts when `user_id` submits `view` (as views.open returned it)."""
    payload = {
        "type": "view_submission",
        "team": {"id": TEAM_ID, "domain": "sandbox"},
        "user": _user(user_id),
        "api_app_id": APP_ID,
        "token": "legacy-ignored",
        "trigger_id": trigger_id,
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
    }
    return urlencode({"payload": json.dumps(payload)})


def block_suggestion(
    view: dict[str, Any],
    *,
    user_id: str,
    action_id: str,
    value: str,
    values: dict[str, Any] | None = None,
    block_id: str | None = None,
) -> str:
    """The form body of an `options` request: `user_id` typed `value` in an external_select."""
    payload = {
        "type": "block_suggestion",
        "user": _user(user_id),
        "container": {"type": "view", "view_id": view.get("id")},
        "api_app_id": APP_ID,
        "token": "legacy-ignored",
        "action_id": action_id,
        "block_id": block_id or action_id,
        "value": value,
        "team": {"id": TEAM_ID, "domain": "sandbox"},
        "view": {**view, "state": {"values": values or {}}},
        "action_ts": f"{time.time():.6f}",
    }
    return urlencode({"payload": json.dumps(payload)})
