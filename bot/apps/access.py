"""Who may change an app environment: listed users, or members of listed Slack user groups."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from bot.apps.errors import NotAllowed
from bot.apps.registry import Target
from bot.config import People
from bot.slack_text import code

log = logging.getLogger(__name__)

GROUP_CACHE_S = 60.0


class Access:
    """Checks rights; group members come from Slack's usergroups.users.list, cached briefly."""

    def __init__(
        self,
        members_of: Callable[[str], list[str]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.members_of = members_of
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def _members(self, group_id: str) -> frozenset[str]:
        now = self.monotonic()
        with self._lock:
            cached = self._cache.get(group_id)
            if cached is not None and now - cached[0] < GROUP_CACHE_S:
                return cached[1]
        try:
            members = frozenset(self.members_of(group_id))
        except Exception as exc:
            # Fail closed: an unreadable group grants nothing.
            log.warning("cannot read members of %s (%s)", group_id, type(exc).__name__)
            return frozenset()
        with self._lock:
            self._cache[group_id] = (now, members)
        return members

    def is_member(self, user_id: str, people: People) -> bool:
        if user_id in people.users:
            return True
        return any(user_id in self._members(group) for group in people.groups)

    def require(self, user_id: str, target: Target, *, action: str) -> None:
        """Raise NotAllowed naming who may, unless `user_id` may change `target`."""
        people = target.settings.deployers
        if self.is_member(user_id, people):
            return
        # Mentions built from configured ids: live on purpose.
        who = [f"<@{u}>" for u in people.users] + [f"<!subteam^{g}>" for g in people.groups]
        allowed = ", ".join(who) if who else "nobody (no deployers are configured)"
        raise NotAllowed(f"You may not {action} {code(target.label)}. Allowed: {allowed}.")
