"""What Slack knows about people and channels, as rights need it, cached for a short while.

Each answer is cached for `ttl_s` (a minute by default): a person removed from
a channel or a group keeps its rights at most that long. A failure is never
cached and never guessed: it raises SlackFactsUnavailable, and rights fail closed.
A read that gets no answer at all (a timeout, a reset connection) is tried once
more first: the person has been acknowledged already, and a lost packet should
not refuse them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.rights.errors import SlackFactsUnavailable

log = logging.getLogger(__name__)

CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
# A channel with more members than this is read no further: rights that need
# its full membership are refused rather than read for seconds.
MAX_PAGES = 50
PAGE_SIZE = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class Member:
    """A Slack user as rights see them."""

    id: str
    is_guest: bool  # a multi- or single-channel guest (is_restricted / is_ultra_restricted)
    email: str | None  # from the verified Slack profile
    deactivated: bool  # Slack's `deleted`: the account was deactivated


class Workspace:
    def __init__(
        self,
        client: WebClient | None,
        *,
        ttl_s: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.monotonic = monotonic
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _cached(self, kind: str, key: str, read: Callable[[WebClient], T]) -> T:
        now = self.monotonic()
        with self._lock:
            hit = self._cache.get((kind, key))
            if hit is not None and now - hit[0] < self.ttl_s:
                value: T = hit[1]
                return value
        if self.client is None:
            raise SlackFactsUnavailable("opsbot has no Slack token (SLACK_BOT_TOKEN)")
        try:
            value = self._read_twice(read, kind, key)
        except SlackApiError as exc:
            error = str(exc.response.get("error") or "error")
            log.warning("Slack %s for %s failed: %s", kind, key, error)
            raise SlackFactsUnavailable(f"Slack answered `{error}`") from None
        except (SlackClientError, OSError) as exc:
            log.warning("Slack %s for %s failed: %s", kind, key, type(exc).__name__)
            raise SlackFactsUnavailable(f"Slack did not answer ({type(exc).__name__})") from None
        with self._lock:
            self._cache[(kind, key)] = (now, value)
        return value

    def _read_twice(self, read: Callable[[WebClient], T], kind: str, key: str) -> T:
        assert self.client is not None
        try:
            return read(self.client)
        except (SlackClientError, OSError) as exc:
            if isinstance(exc, SlackApiError):  # Slack answered: asking again changes nothing
                raise
            log.info(
                "Slack %s for %s got no answer (%s); trying once more",
                kind,
                key,
                type(exc).__name__,
            )
            return read(self.client)

    def home(self) -> tuple[str | None, str | None]:
        """The bot's own team and Enterprise Grid organisation (auth.test)."""

        def read(client: WebClient) -> tuple[str | None, str | None]:
            answer = client.auth_test()
            team, enterprise = answer.get("team_id"), answer.get("enterprise_id")
            return (str(team) if team else None, str(enterprise) if enterprise else None)

        return self._cached("auth.test", "", read)

    def member(self, user_id: str) -> Member:
        def read(client: WebClient) -> Member:
            user = client.users_info(user=user_id).get("user") or {}
            email = (user.get("profile") or {}).get("email")
            guest = bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
            return Member(
                id=user_id,
                is_guest=guest or self._outsider(user),
                email=str(email) if email else None,
                deactivated=bool(user.get("deleted")),
            )

        return self._cached("users.info", user_id, read)

    def full_member(self, user_id: str) -> Member | None:
        """The member, if Slack says they are one of ours: not a guest nor of another
        organisation. None too when Slack cannot say now (logged): what only a full
        member gets is not given on a guess."""
        try:
            member = self.member(user_id)
        except SlackFactsUnavailable:
            return None
        return None if member.is_guest else member

    def _outsider(self, user: dict[str, object]) -> bool:
        """Someone of another organisation in a shared channel (Slack Connect): a guest.

        They are neither restricted nor ultra-restricted in their own workspace,
        yet nothing of ours vouches for them; a user of another workspace of our
        own Enterprise Grid organisation is one of ours.
        """
        team = user.get("team_id")
        home_team, home_enterprise = self.home()
        if not team or home_team is None or team == home_team:
            return False
        grid = user.get("enterprise_user")
        enterprise = grid.get("enterprise_id") if isinstance(grid, dict) else None
        return home_enterprise is None or enterprise != home_enterprise

    def group_members(self, group_id: str) -> frozenset[str]:
        def read(client: WebClient) -> frozenset[str]:
            answer = client.usergroups_users_list(usergroup=group_id)
            return frozenset(str(u) for u in answer.get("users") or [])

        return self._cached("usergroups.users.list", group_id, read)

    def channel_id(self, channel: str) -> str:
        """The id of a channel the config names by id or by `#name`."""
        if CHANNEL_ID.match(channel):
            return channel
        name = channel.removeprefix("#")

        def read(client: WebClient) -> str:
            for page in self._pages(
                client.conversations_list,
                types="public_channel,private_channel",
                exclude_archived=True,
            ):
                for found in page.get("channels") or []:
                    if found.get("name") == name:
                        return str(found["id"])
            raise SlackFactsUnavailable(f"no channel is named #{name}")

        return self._cached("conversations.list", name, read)

    def is_private(self, channel: str) -> bool:
        channel_id = self.channel_id(channel)

        def read(client: WebClient) -> bool:
            found = client.conversations_info(channel=channel_id).get("channel") or {}
            return bool(found.get("is_private") or found.get("is_im") or found.get("is_mpim"))

        return self._cached("conversations.info", channel_id, read)

    def channel_members(self, channel: str) -> frozenset[str]:
        channel_id = self.channel_id(channel)

        def read(client: WebClient) -> frozenset[str]:
            members: set[str] = set()
            for page in self._pages(client.conversations_members, channel=channel_id):
                members.update(str(m) for m in page.get("members") or [])
            return frozenset(members)

        return self._cached("conversations.members", channel_id, read)

    def _pages(self, method: Callable[..., Any], **args: Any) -> list[dict[str, Any]]:
        pages: list[dict[str, Any]] = []
        cursor = ""
        for _ in range(MAX_PAGES):
            answer = method(limit=PAGE_SIZE, cursor=cursor or None, **args)
            pages.append(answer.data if hasattr(answer, "data") else dict(answer))
            cursor = ((answer.get("response_metadata") or {}).get("next_cursor")) or ""
            if not cursor:
                return pages
        raise SlackFactsUnavailable(f"more than {MAX_PAGES * PAGE_SIZE} entries to read")
