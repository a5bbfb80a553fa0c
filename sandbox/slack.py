"""A Slack Web API emulator: channels, users, messages, threads, response_urls.

Real HTTP on loopback, driven by the real slack_sdk clients (`SLACK_API_URL`).
It records every call, can be told to fail (see `faults`), and can enforce
Slack's one-post-a-second-per-channel limit with 429s. Like Slack, it takes a
channel's name only where Slack does (`TAKES_NAMES`); its own helpers for tests
(`channel_messages`, `thread`, ...) take either.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.server import HttpRequest, HttpResponse, LoopbackServer
from sandbox.slack_channels import SlackChannelsMixin
from sandbox.slack_home import SlackHomeMixin
from sandbox.slack_socket import SlackSocketMixin
from sandbox.slack_views import SlackViewsMixin

BOT_USER = "U0OPSBOT"
# As in Slack, only these methods take a channel by name (`#alerts`); every other
# (chat.update, conversations.history, conversations.replies...) answers
# channel_not_found unless given the channel's id.
TAKES_NAMES = frozenset({"chat.postMessage", "chat.postEphemeral"})


@dataclass
class Message:
    channel: str
    ts: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier versions

    def as_api(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": "message",
            "ts": self.ts,
            "user": self.user,
            "bot_id": "B0OPSBOT" if self.user == BOT_USER else None,
            "text": self.text,
        }
        if self.blocks is not None:
            data["blocks"] = self.blocks
        if self.thread_ts is not None:
            data["thread_ts"] = self.thread_ts
        if self.metadata is not None:
            data["metadata"] = self.metadata
        if self.updates:
            data["edited"] = {"user": self.user, "ts": self.ts}
        return {k: v for k, v in data.items() if v is not None}


@dataclass
class Ephemeral:
    """A message only one person sees: a command's answer, a response_url post."""

    id: str  # ordered like message ts, so a console can interleave both
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None
    source: str  # "ack", "response_url" or "chat.postEphemeral"
    response_path: str | None = None  # the response_url that created it
    updates: int = 0
    deleted: bool = False


@dataclass(frozen=True)
class ResponseOrigin:
    """Where a response_url was handed out: a command, or a click on a message."""

    channel: str | None
    user: str | None
    message_ts: str | None = None  # the channel message a button was on
    ephemeral_id: str | None = None  # ... or the ephemeral message it was on


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    at: float
    ok: bool
    error: str | None = None


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class SlackEmulator(SlackHomeMixin, SlackChannelsMixin, SlackViewsMixin, SlackSocketMixin):
    def __init__(
        self,
        *,
        token: str = "xoxb-sandbox",  # noqa: S107  # the emulator's own fake token
        enforce_rate_limit: bool = False,
        rate_limit_burst: int = 3,
        rate_limit_per_s: float | None = None,
    ) -> None:
        """`enforce_rate_limit`: chat.postMessage answers 429 beyond `rate_limit_burst`
        posts a second per channel or, with `rate_limit_per_s`, beyond a token bucket
        of that rate and burst (Slack's "1 a second, short bursts allowed")."""
        self.token = token
        self.enforce_rate_limit = enforce_rate_limit
        self.rate_limit_burst = rate_limit_burst
        self.rate_limit_per_s = rate_limit_per_s
        self._post_tokens: dict[str, tuple[float, float]] = {}  # channel -> (tokens, at)
        self.lock = threading.RLock()
        self.channels: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, dict[str, Any]] = {}
        self.messages: dict[str, list[Message]] = defaultdict(list)
        self.ephemeral: list[dict[str, Any]] = []  # chat.postEphemeral calls, as made
        self.ephemerals: list[Ephemeral] = []  # what each person was shown, updated in place
        self.responses: list[dict[str, Any]] = []  # bodies posted to response_urls
        self.response_origins: dict[str, ResponseOrigin] = {}
        self.webhooks: list[dict[str, Any]] = []  # bodies posted to incoming webhooks
        self.calls: list[Call] = []
        self._ts = itertools.count(1)
        self._epoch = int(time.time())
        self._recent_posts: dict[str, deque[float]] = defaultdict(deque)
        self.server = LoopbackServer(
            self.handle,
            call_name=self._call_name,
            fault_body=lambda status: {
                "ok": False,
                "error": "ratelimited" if status == 429 else "fatal_error",
            },
        )
        self.add_user("U0ALICE", "alice", email="alice@example.com", real_name="Alice Example")
        self.add_user("U0BOB", "bob", email="bob@example.com", real_name="Bob Example")

    # -- setting up -------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.server.url}/api/"

    @property
    def faults(self) -> Any:
        return self.server.faults

    def start(self) -> SlackEmulator:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        private: bool = False,
        bot_member: bool = True,
        members: list[str] | None = None,
    ) -> None:
        """A channel; `members` None: every full member of the workspace is in it."""
        with self.lock:
            self.channels[channel_id] = {
                "id": channel_id,
                "name": name,
                "is_private": private,
                "bot_member": bot_member,
                "members": None if members is None else list(members),
            }

    def set_channel_members(self, channel: str, members: list[str]) -> None:
        with self.lock:
            channel_id = self._resolve(channel)
            assert channel_id is not None, f"no channel {channel}"
            self.channels[channel_id]["members"] = list(members)

    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        email: str | None = None,
        real_name: str | None = None,
        guest: bool = False,
        team_id: str = "T0000",
    ) -> None:
        """A user; a `guest` is a multi-channel guest (is_restricted), in no channel by default.

        `team_id` other than the workspace's (T0000): someone of another organisation
        in a shared channel (Slack Connect)."""
        with self.lock:
            profile: dict[str, Any] = {"real_name": real_name or name, "display_name": name}
            if email:
                profile["email"] = email
            self.users[user_id] = {
                "id": user_id,
                "name": name,
                "real_name": real_name or name,
                "profile": profile,
                "is_restricted": guest,
                "is_ultra_restricted": False,
                "team_id": team_id,
            }

    def _members_of(self, channel_id: str) -> list[str]:
        listed = self.channels[channel_id].get("members")
        if listed is not None:
            return list(listed)
        return [uid for uid, user in self.users.items() if not user.get("is_restricted")]

    def add_usergroup(self, group_id: str, handle: str, members: list[str]) -> None:
        with self.lock:
            self.usergroups[group_id] = {"id": group_id, "handle": handle, "users": list(members)}

    def response_url(
        self,
        *,
        channel: str | None = None,
        user: str | None = None,
        message_ts: str | None = None,
        ephemeral_id: str | None = None,
    ) -> str:
        """A fresh response_url. Given where it was handed out, posts to it act like
        Slack's: a new ephemeral message, an `in_channel` post, or `replace_original`
        / `delete_original` on the message a button was on."""
        path = f"/response/{uuid.uuid4().hex}"
        if channel is not None or user is not None:
            with self.lock:
                self.response_origins[path] = ResponseOrigin(
                    channel=self._resolve(channel) or channel,
                    user=user,
                    message_ts=message_ts,
                    ephemeral_id=ephemeral_id,
                )
        return f"{self.server.url}{path}"

    def add_ephemeral(
        self,
        *,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        source: str = "ack",
        response_path: str | None = None,
    ) -> Ephemeral:
        """Show `user` a message only they see (e.g. the answer to their command)."""
        with self.lock:
            message = Ephemeral(
                id=self._next_ts(),
                channel=self._resolve(channel) or channel,
                user=user,
                text=text,
                blocks=blocks,
                source=source,
                response_path=response_path,
            )
            self.ephemerals.append(message)
            return message

    def webhook_url(self, name: str = "alerts") -> str:
        return f"{self.server.url}/services/T0000/B0000/{name}"

    # -- reading state (tests, the dev console) -----------------------------------

    def channel_messages(self, channel: str) -> list[Message]:
        """Top-level messages of a channel (id or #name), oldest first."""
        with self.lock:
            channel_id = self._resolve(channel)
            return [m for m in self.messages.get(channel_id or "", []) if m.thread_ts is None]

    def thread(self, channel: str, ts: str) -> list[Message]:
        with self.lock:
            channel_id = self._resolve(channel) or channel
            return [m for m in self.messages.get(channel_id, []) if m.thread_ts == ts]

    def all_messages(self) -> list[Message]:
        with self.lock:
            return [m for msgs in self.messages.values() for m in msgs]

    def add_message(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        user: str = BOT_USER,
    ) -> Message:
        """A message in a channel, as if posted there (e.g. an `in_channel` answer)."""
        with self.lock:
            channel_id = self._resolve(channel) or channel
            message = Message(
                channel=channel_id,
                ts=self._next_ts(),
                user=user,
                text=text,
                blocks=blocks,
                thread_ts=thread_ts,
            )
            self.messages[channel_id].append(message)
            return message

    def find_ephemeral(self, ephemeral_id: str) -> Ephemeral | None:
        with self.lock:
            return next((e for e in self.ephemerals if e.id == ephemeral_id), None)

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method and c.ok]

    # -- the API -----------------------------------------------------------------

    def _call_name(self, request: HttpRequest) -> str:
        return request.path.removeprefix("/api/")

    def _resolve(self, channel: str | None) -> str | None:
        if not channel:
            return None
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        for channel_id, info in self.channels.items():
            if info["name"] == name:
                return channel_id
        if channel.startswith("D") or channel.startswith("U"):
            return channel  # direct messages are always reachable
        return None

    def _args(self, request: HttpRequest) -> dict[str, Any]:
        args: dict[str, Any] = {k: v[-1] for k, v in request.query.items()}
        content_type = request.headers.get("content-type", "")
        if request.body:
            if "json" in content_type:
                args.update(request.json() or {})
            else:
                args.update(request.form())
        return {k: _decode(v) for k, v in args.items()}

    def handle(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/response/"):
            body = request.json() or {}
            with self.lock:
                self.responses.append({"url": request.path, **body})
                if isinstance(body, dict):
                    self._respond(request.path, body)
            return HttpResponse(200, b"ok", {"Content-Type": "text/plain"})
        if request.path.startswith("/services/"):
            with self.lock:
                self.webhooks.append({"path": request.path, **(request.json() or {})})
            return HttpResponse(200, b"ok", {"Content-Type": "text/plain"})
        if not request.path.startswith("/api/"):
            return HttpResponse(404, b"not found")
        method = request.path.removeprefix("/api/")
        args = self._args(request)
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() or str(args.get("token", ""))
        with self.lock:
            if not self.accepts_token(method, token):
                return self._answer(method, args, {"ok": False, "error": "invalid_auth"})
            handler = getattr(self, "api_" + method.replace(".", "_"), None)
            if handler is None:
                return self._answer(method, args, {"ok": False, "error": "unknown_method"})
            if method not in TAKES_NAMES and self._by_name(args.get("channel")):
                return self._answer(method, args, {"ok": False, "error": "channel_not_found"})
            limited = self._rate_limited(method, args)
            if limited is not None:
                return limited
            return self._answer(method, args, handler(args))

    def _by_name(self, channel: Any) -> bool:
        """Whether `channel` names a channel rather than giving its id."""
        return isinstance(channel, str) and self._resolve(channel) not in (None, channel)

    def _answer(self, method: str, args: dict[str, Any], data: dict[str, Any]) -> HttpResponse:
        self.calls.append(Call(method, args, time.time(), bool(data.get("ok")), data.get("error")))
        return HttpResponse.json(data)

    def _rate_limited(self, method: str, args: dict[str, Any]) -> HttpResponse | None:
        if not self.enforce_rate_limit or method != "chat.postMessage":
            return None
        channel = self._resolve(args.get("channel")) or str(args.get("channel"))
        now = time.monotonic()
        if self.rate_limit_per_s is not None:
            tokens, at = self._post_tokens.get(channel, (float(self.rate_limit_burst), now))
            tokens = min(float(self.rate_limit_burst), tokens + (now - at) * self.rate_limit_per_s)
            if tokens < 1:
                self._post_tokens[channel] = (tokens, now)
                self.calls.append(Call(method, args, time.time(), False, "ratelimited"))
                return HttpResponse.json(
                    {"ok": False, "error": "ratelimited"}, 429, {"Retry-After": "1"}
                )
            self._post_tokens[channel] = (tokens - 1, now)
            return None
        recent = self._recent_posts[channel]
        while recent and now - recent[0] > 1.0:
            recent.popleft()
        if len(recent) >= self.rate_limit_burst:
            self.calls.append(Call(method, args, time.time(), False, "ratelimited"))
            return HttpResponse.json(
                {"ok": False, "error": "ratelimited"}, 429, {"Retry-After": "1"}
            )
        recent.append(now)
        return None

    def _respond(self, path: str, body: dict[str, Any]) -> None:
        """What Slack does with a response_url post, where we know its origin."""
        origin = self.response_origins.get(path)
        if origin is None or origin.channel is None:
            return
        text = str(body.get("text") or "")
        blocks = body.get("blocks")
        if body.get("delete_original") or body.get("replace_original"):
            original = self._original(path, origin)
            if isinstance(original, Message):
                if body.get("delete_original"):
                    self.messages[original.channel].remove(original)
                else:
                    original.history.append({"text": original.text, "blocks": original.blocks})
                    original.text, original.blocks = text, blocks
                    original.updates += 1
                return
            if isinstance(original, Ephemeral):
                if body.get("delete_original"):
                    original.deleted = True
                else:
                    original.text, original.blocks = text, blocks
                    original.updates += 1
                return
            if body.get("delete_original"):
                return
        if body.get("response_type") == "in_channel":
            self.add_message(
                channel=origin.channel,
                text=text,
                blocks=blocks,
                thread_ts=body.get("thread_ts") or None,
            )
            return
        self.ephemerals.append(
            Ephemeral(
                id=self._next_ts(),
                channel=origin.channel,
                user=origin.user or "",
                text=text,
                blocks=blocks,
                source="response_url",
                response_path=path,
            )
        )

    def _original(self, path: str, origin: ResponseOrigin) -> Message | Ephemeral | None:
        if origin.message_ts is not None and origin.channel is not None:
            return self._find(origin.channel, origin.message_ts)
        if origin.ephemeral_id is not None:
            return next((e for e in self.ephemerals if e.id == origin.ephemeral_id), None)
        # A command's response_url: its latest message is the one to replace.
        mine = [e for e in self.ephemerals if e.response_path == path and not e.deleted]
        return mine[-1] if mine else None

    def _next_ts(self) -> str:
        return f"{self._epoch}.{next(self._ts):06d}"

    def _find(self, channel_id: str, ts: str) -> Message | None:
        for message in self.messages.get(channel_id, []):
            if message.ts == ts:
                return message
        return None

    def api_auth_test(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "user_id": BOT_USER,
            "bot_id": "B0OPSBOT",
            "team_id": "T0000",
            "team": "sandbox",
        }

    def api_chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        info = self.channels.get(channel_id)
        if info and info["is_private"] and not info["bot_member"]:
            return {"ok": False, "error": "not_in_channel"}
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        thread_ts = args.get("thread_ts") or None
        if thread_ts and self._find(channel_id, thread_ts) is None:
            return {"ok": False, "error": "thread_not_found"}
        message = Message(
            channel=channel_id,
            ts=self._next_ts(),
            user=BOT_USER,
            text=str(args.get("text") or ""),
            blocks=args.get("blocks"),
            thread_ts=thread_ts,
            metadata=args.get("metadata"),
        )
        self.messages[channel_id].append(message)
        return {"ok": True, "channel": channel_id, "ts": message.ts, "message": message.as_api()}

    def api_chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        message = self._find(channel_id, str(args.get("ts")))
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.history.append({"text": message.text, "blocks": message.blocks})
        if "text" in args:
            message.text = str(args["text"])
        if "blocks" in args:
            message.blocks = args["blocks"]
        message.updates += 1
        return {"ok": True, "channel": channel_id, "ts": message.ts, "text": message.text}

    def api_chat_postEphemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        self.ephemeral.append({"channel": channel_id, **args})
        message = Ephemeral(
            id=self._next_ts(),
            channel=channel_id,
            user=str(args.get("user") or ""),
            text=str(args.get("text") or ""),
            blocks=args.get("blocks"),
            source="chat.postEphemeral",
        )
        self.ephemerals.append(message)
        return {"ok": True, "message_ts": message.id}

    def api_chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        message = self._find(channel_id or "", str(args.get("ts")))
        if channel_id is None or message is None:
            return {"ok": False, "error": "message_not_found"}
        self.messages[channel_id].remove(message)
        pins = self.channels.get(channel_id, {}).get("pins", [])
        if message.ts in pins:  # a deleted message is no longer pinned, as in Slack
            pins.remove(message.ts)
        return {"ok": True, "channel": channel_id, "ts": message.ts}

    def api_chat_getPermalink(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        ts = str(args.get("message_ts", ""))
        if channel_id is None or self._find(channel_id, ts) is None:
            return {"ok": False, "error": "message_not_found"}
        return {
            "ok": True,
            "channel": channel_id,
            "permalink": f"{self.server.url}/archives/{channel_id}/p{ts.replace('.', '')}",
        }

    def _listing(self, messages: list[Message], args: dict[str, Any]) -> dict[str, Any]:
        """One page of `messages` written after `oldest` (at it too when `inclusive`),
        from `cursor`, with the next page's cursor as Slack gives it."""
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        if args.get("oldest"):
            oldest = Decimal(str(args["oldest"]))
            inclusive = str(args.get("inclusive", "")).lower() in ("1", "true")
            messages = [
                m
                for m in messages
                if (Decimal(m.ts) >= oldest if inclusive else Decimal(m.ts) > oldest)
            ]
        start = int(args.get("cursor") or 0)
        end = start + limit
        items = []
        for message in messages[start:end]:
            data = message.as_api()
            if not with_metadata:
                data.pop("metadata", None)
            items.append(data)
        cursor = str(end) if end < len(messages) else ""
        return {
            "ok": True,
            "messages": items,
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    def api_conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        top = [m for m in self.messages.get(channel_id, []) if m.thread_ts is None]
        answer = self._listing(list(reversed(top)), args)
        answer["channel"] = channel_id
        return answer

    def api_conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        ts = str(args.get("ts", ""))
        parent = self._find(channel_id or "", ts)
        if channel_id is None or parent is None:
            return {"ok": False, "error": "thread_not_found"}
        thread = [parent] + [m for m in self.messages[channel_id] if m.thread_ts == ts]
        return self._listing(thread, args)

    def api_conversations_info(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None:
            return {"ok": False, "error": "channel_not_found"}
        info = self.channels.get(
            channel_id, {"id": channel_id, "name": channel_id, "is_private": False}
        )
        shown = {k: v for k, v in info.items() if k != "members"}
        return {"ok": True, "channel": {**shown, "is_member": info.get("bot_member", True)}}

    def api_conversations_members(self, args: dict[str, Any]) -> dict[str, Any]:
        channel_id = self._resolve(args.get("channel"))
        if channel_id is None or channel_id not in self.channels:
            return {"ok": False, "error": "channel_not_found"}
        return self._page(self._members_of(channel_id), "members", args)

    def api_conversations_list(self, args: dict[str, Any]) -> dict[str, Any]:
        # Slack leaves archived channels out when asked to, and says of each whether it
        # is archived and whether the caller is a member.
        exclude = str(args.get("exclude_archived", "")).lower() in ("true", "1")
        channels = [
            {
                "id": c["id"],
                "name": c["name"],
                "is_private": c["is_private"],
                "is_archived": bool(c.get("is_archived")),
                "is_member": bool(c.get("bot_member")),
            }
            for c in self.channels.values()
            if not (exclude and c.get("is_archived"))
        ]
        return self._page(channels, "channels", args)

    def _page(self, items: list[Any], key: str, args: dict[str, Any]) -> dict[str, Any]:
        """One page of a cursor-paginated listing, as Slack's `response_metadata` gives it."""
        start = int(args.get("cursor") or 0)
        limit = int(args.get("limit") or 100)
        end = start + limit
        cursor = str(end) if end < len(items) else ""
        return {"ok": True, key: items[start:end], "response_metadata": {"next_cursor": cursor}}

    def api_users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(args.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": user}

    def api_users_lookupByEmail(self, args: dict[str, Any]) -> dict[str, Any]:
        email = str(args.get("email", "")).lower()
        for user in self.users.values():
            if str(user["profile"].get("email", "")).lower() == email:
                return {"ok": True, "user": user}
        return {"ok": False, "error": "users_not_found"}

    def api_usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = self.usergroups.get(str(args.get("usergroup")))
        if group is None:
            return {"ok": False, "error": "no_such_subteam"}
        return {"ok": True, "users": list(group["users"])}

    def api_usergroups_list(self, _args: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "usergroups": list(self.usergroups.values())}
