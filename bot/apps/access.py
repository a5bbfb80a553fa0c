"""Who may change an app environment: listed users, or members of listed Slack user groups.

A group Slack cannot list (an error, a rate limit) grants nothing: rights fail
closed. `require` then says that it could not check, rather than "you may not".
"""

from __future__ import annotations

import logging

from bot.apps.errors import NotAllowed, RightUnverifiable
from bot.apps.registry import Target
from bot.config import People
from bot.rights.errors import SlackFactsUnavailable
from bot.rights.workspace import Workspace
from bot.slack_text import code

log = logging.getLogger(__name__)


class Access:
    """Checks rights; group members come from Slack's usergroups.users.list, cached briefly."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def _members(self, group_id: str) -> frozenset[str]:
        try:
            return self.workspace.group_members(group_id)
        except SlackFactsUnavailable:
            return frozenset()  # fail closed: an unreadable group grants nothing

    def is_member(self, user_id: str, people: People) -> bool:
        if user_id in people.users:
            return True
        return any(user_id in self._members(group) for group in people.groups)

    def require(self, user_id: str, target: Target, *, action: str) -> None:
        """Raise NotAllowed naming who may, unless `user_id` may change `target`.

        RightUnverifiable (a NotAllowed) when they are in no group Slack could
        list, and a group it could not list might have let them.
        """
        people = target.settings.deployers
        if user_id in people.users:
            return
        unread: SlackFactsUnavailable | None = None
        for group in people.groups:
            try:
                if user_id in self.workspace.group_members(group):
                    return
            except SlackFactsUnavailable as exc:  # fail closed, and say why
                unread = exc
        if unread is not None:
            raise RightUnverifiable(
                f"opsbot could not check whether you may {action} {code(target.label)} "
                f"({unread}). Nothing was done: try again in a minute.",
                reason=str(unread),
            )
        # Mentions built from configured ids: live on purpose.
        who = [f"<@{u}>" for u in people.users] + [f"<!subteam^{g}>" for g in people.groups]
        allowed = ", ".join(who) if who else "nobody (no deployers are configured)"
        raise NotAllowed(f"You may not {action} {code(target.label)}. Allowed: {allowed}.")
