"""Channel management for the Slack emulator: create, invite, topic, pin, archive.

A mixin of `SlackEmulator` (sandbox/slack.py), which owns the state it reads
(`channels`, `users`, `messages`, `lock`, `_resolve`, `_find`). Slack's own
rules are kept where opsbot depends on them: names are at most 80 characters of
lowercase letters, digits, `-` and `_`; a name in use (archived channels too)
answers `name_taken`; every method answers `missing_scope` (with `needed`) when
the scope it needs was taken from the app (`revoke_scope`; a private channel
needs `groups:write`).
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandbox.slack import Message

NAME = re.compile(r"^[a-z0-9_-]{1,80}$")
SCOPES = {
    "conversations.create": "channels:manage",
    "conversations.invite": "channels:manage",
    "conversations.setTopic": "channels:manage",
    "conversations.archive": "channels:manage",
    "pins.add": "pins:write",
}
_ids = itertools.count(1)


class SlackChannelsMixin:
    """conversations.create / invite / setTopic / archive and pins.add."""

    channels: dict[str, dict[str, Any]]
    users: dict[str, dict[str, Any]]
    messages: dict[str, list[Message]]
    revoked_scopes: set[str]

    def _resolve(self, channel: str | None) -> str | None:
        raise NotImplementedError

    def _find(self, channel_id: str, ts: str) -> Message | None:
        raise NotImplementedError

    # -- setting up -------------------------------------------------------------

    def revoke_scope(self, scope: str) -> None:
        """The app loses `scope`: the methods that need it answer missing_scope."""
        self.revoked_scopes = {*getattr(self, "revoked_scopes", set()), scope}

    def pins(self, channel: str) -> list[str]:
        """The ts of the messages pinned in `channel`."""
        channel_id = self._resolve(channel) or channel
        return list(self.channels.get(channel_id, {}).get("pins", []))

    def channel_named(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.channels.values() if c["name"] == name), None)

    # -- the API -----------------------------------------------------------------

    def _lacks(self, method: str, *, private: bool = False) -> dict[str, Any] | None:
        needed = "groups:write" if private else SCOPES[method]
        if needed in getattr(self, "revoked_scopes", set()):
            return {"ok": False, "error": "missing_scope", "needed": needed, "provided": ""}
        return None

    def _channel_or_error(self, args: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None or channel_id not in self.channels:
            return None, "channel_not_found"
        info = self.channels[channel_id]
        if info.get("is_archived"):
            return None, "is_archived"
        return info, None

    def api_conversations_create(self, args: dict[str, Any]) -> dict[str, Any]:
        private = str(args.get("is_private", "")).lower() in ("true", "1")
        lacking = self._lacks("conversations.create", private=private)
        if lacking is not None:
            return lacking
        name = str(args.get("name") or "")
        if not NAME.match(name):
            return {"ok": False, "error": "invalid_name_specials" if name else "invalid_name"}
        if any(c["name"] == name for c in self.channels.values()):
            return {"ok": False, "error": "name_taken"}
        channel_id = f"C{next(_ids):04d}INC"
        self.channels[channel_id] = {
            "id": channel_id,
            "name": name,
            "is_private": private,
            "bot_member": True,
            "members": ["U0OPSBOT"],
            "topic": "",
            "pins": [],
            "is_archived": False,
        }
        return {"ok": True, "channel": {"id": channel_id, "name": name, "is_private": private}}

    def api_conversations_invite(self, args: dict[str, Any]) -> dict[str, Any]:
        lacking = self._lacks("conversations.invite")
        if lacking is not None:
            return lacking
        info, error = self._channel_or_error(args)
        if info is None:
            return {"ok": False, "error": error}
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if not users:
            return {"ok": False, "error": "no_user"}
        members = info.get("members")
        members = list(members) if members is not None else []
        for user_id in users:
            if user_id == "U0OPSBOT":
                return {"ok": False, "error": "cant_invite_self"}
            if user_id not in self.users:
                return {"ok": False, "error": "user_not_found"}
            if user_id in members:
                return {"ok": False, "error": "already_in_channel"}
        info["members"] = members + users
        return {"ok": True, "channel": {"id": info["id"], "name": info["name"]}}

    def api_conversations_setTopic(self, args: dict[str, Any]) -> dict[str, Any]:
        lacking = self._lacks("conversations.setTopic")
        if lacking is not None:
            return lacking
        info, error = self._channel_or_error(args)
        if info is None:
            return {"ok": False, "error": error}
        topic = str(args.get("topic") or "")
        if len(topic) > 250:
            return {"ok": False, "error": "too_long"}
        info["topic"] = topic
        return {"ok": True, "channel": {"id": info["id"], "topic": {"value": topic}}}

    def api_conversations_archive(self, args: dict[str, Any]) -> dict[str, Any]:
        lacking = self._lacks("conversations.archive")
        if lacking is not None:
            return lacking
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None or channel_id not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        info = self.channels[channel_id]
        if info.get("is_archived"):
            return {"ok": False, "error": "already_archived"}
        info["is_archived"] = True
        return {"ok": True}

    def api_pins_add(self, args: dict[str, Any]) -> dict[str, Any]:
        lacking = self._lacks("pins.add")
        if lacking is not None:
            return lacking
        info, error = self._channel_or_error(args)
        if info is None:
            return {"ok": False, "error": error}
        ts = str(args.get("timestamp") or "")
        if self._find(info["id"], ts) is None:
            return {"ok": False, "error": "message_not_found"}
        pins = info.setdefault("pins", [])
        if ts in pins:
            return {"ok": False, "error": "already_pinned"}
        pins.append(ts)
        return {"ok": True}
