"""The Slack emulator's App Home: `views.publish`, and the `app_home_opened` event to send.

SlackEmulator inherits `SlackHomeMixin`; the published views are kept per user
(the console renders them, tests read them), each publish is recorded as a call.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

from sandbox import slack_requests

HOME_BLOCKS_MAX = 100  # Slack's limit for a Home tab
_view_ids = itertools.count(1)


class SlackHomeMixin:
    lock: threading.RLock
    users: dict[str, dict[str, Any]]

    @property
    def home_views(self) -> dict[str, dict[str, Any]]:
        """The Home view last published to each user."""
        views: dict[str, dict[str, Any]] = self.__dict__.setdefault("_home_views", {})
        return views

    def home_of(self, user_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.home_views.get(user_id)

    def api_views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = str(args.get("user_id") or "")
        view = args.get("view")
        if isinstance(view, str):
            try:
                view = json.loads(view)
            except ValueError:
                return {"ok": False, "error": "invalid_arguments"}
        if user_id not in self.users:
            return {"ok": False, "error": "user_not_found"}
        if not isinstance(view, dict) or view.get("type") != "home":
            return {"ok": False, "error": "invalid_arguments"}
        blocks = view.get("blocks")
        if not isinstance(blocks, list) or len(blocks) > HOME_BLOCKS_MAX:
            return {"ok": False, "error": "invalid_blocks"}
        if any(not isinstance(b, dict) or "type" not in b for b in blocks):
            return {"ok": False, "error": "invalid_blocks"}
        published = {**view, "id": f"V{next(_view_ids):08d}", "user_id": user_id}
        self.home_views[user_id] = published
        return {"ok": True, "view": published}


def app_home_opened(user_id: str, *, event_id: str, tab: str = "home") -> str:
    """The JSON body Slack sends when `user_id` opens the app's Home tab."""
    event = {
        "type": "app_home_opened",
        "user": user_id,
        "channel": f"D{user_id[1:]}",
        "tab": tab,
        "event_ts": "1.000001",
    }
    return slack_requests.event_callback(event, event_id=event_id)


def home_block_action(
    action_id: str,
    value: str | None,
    *,
    user_id: str,
    view: dict[str, Any],
    block_id: str = "b",
    trigger_id: str | None = None,
) -> str:
    """The form body of a click on `user_id`'s Home tab: no channel, no response_url.

    `trigger_id`: one the emulator minted, for a click that opens a modal.
    """
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id,
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if value is not None:
        action["value"] = value
    payload = {
        "type": "block_actions",
        "team": {"id": slack_requests.TEAM_ID, "domain": "sandbox"},
        "user": {"id": user_id, "team_id": slack_requests.TEAM_ID},
        "api_app_id": slack_requests.APP_ID,
        "container": {"type": "view", "view_id": view.get("id")},
        "trigger_id": trigger_id or f"{int(time.time())}.home",
        "view": {"id": view.get("id"), "type": "home", "blocks": view.get("blocks", [])},
        "actions": [action],
    }
    return urlencode({"payload": json.dumps(payload)})
