"""Who may change an app environment: listed users, or members of listed Slack user groups.

Being listed is not all: a guest of the workspace (single- or multi-channel, or
someone of another organisation) and a deactivated Slack account hold no such
right, whether listed by id or through a group, and from whichever door they
come (a command, a modal, a button, the CLI acting as them). There is no
opt-in: guests may view releases but never deploy, roll back, force or approve.

Whatever Slack cannot say (a group it cannot list, a profile it cannot read: an
error, a rate limit) grants nothing: rights fail closed. A refusal then says
that opsbot could not check, rather than "you may not".
"""

from __future__ import annotations

import logging
from enum import StrEnum

from bot.apps.errors import NotAllowed, RightUnverifiable
from bot.apps.registry import Target
from bot.commands import RIGHT_NAMES, Right
from bot.config import People
from bot.rights.errors import SlackFactsUnavailable
from bot.rights.workspace import Workspace
from bot.slack_text import code

log = logging.getLogger(__name__)

# The right `deploys.force_allowed` gives, as a refusal names it.
FORCE_DEPLOYS = "the right to force deploys (`deploys.force_allowed`)"


class Standing(StrEnum):
    """Where someone stands with a right given to listed people."""

    HOLDS = "holds"
    UNLISTED = "unlisted"  # neither listed by id nor in a group Slack listed
    GUEST = "guest"  # listed, but a guest of the workspace
    DEACTIVATED = "deactivated"  # listed, but their Slack account is deactivated


class Access:
    """Checks rights; group members and profiles come from Slack, cached briefly (Workspace)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    def standing(self, user_id: str, people: People) -> Standing:
        """Where `user_id` stands with the right `people` give; SlackFactsUnavailable if Slack
        cannot say.

        The lists come first: someone listed nowhere is refused without reading
        their profile, so a profile Slack cannot read never turns that plain
        refusal into "could not check", and costs no call.
        """
        if not self._listed(user_id, people):
            return Standing.UNLISTED
        member = self.workspace.member(user_id)
        if member.deactivated:
            return Standing.DEACTIVATED
        if member.is_guest:
            return Standing.GUEST
        return Standing.HOLDS

    def _listed(self, user_id: str, people: People) -> bool:
        """Whether `user_id` is listed by id or in one of the groups.

        SlackFactsUnavailable when they are in no group Slack could list and a
        group it could not list might hold them: an unread group grants nothing.
        """
        if user_id in people.users:
            return True
        unread: SlackFactsUnavailable | None = None
        for group in people.groups:
            try:
                if user_id in self.workspace.group_members(group):
                    return True
            except SlackFactsUnavailable as exc:
                unread = exc
        if unread is not None:
            raise unread
        return False

    def holds(self, user_id: str, people: People) -> bool:
        """Whether `user_id` holds the right `people` give; SlackFactsUnavailable as `standing`."""
        return self.standing(user_id, people) is Standing.HOLDS

    def require(self, user_id: str, target: Target, *, action: str) -> None:
        """Raise NotAllowed naming what is missing, unless `user_id` may `action` `target`."""
        self.require_one_of(
            user_id,
            target.settings.deployers,
            doing=f"{action} {code(target.label)}",
            nobody="nobody (no deployers are configured)",
            right=RIGHT_NAMES[Right.DEPLOY],
        )

    def require_force(self, user_id: str, people: People) -> None:
        """Raise NotAllowed naming the right to force, unless `user_id` is one of `people`
        (`deploys.force_allowed`)."""
        self.require_one_of(user_id, people, doing="force deploys", right=FORCE_DEPLOYS)

    def require_one_of(
        self,
        user_id: str,
        people: People,
        *,
        doing: str,
        nobody: str = "nobody",
        right: str | None = None,
    ) -> None:
        """Raise NotAllowed naming what is missing, unless `user_id` holds the right `people`
        give to be `doing` (mrkdwn, e.g. "force deploys"); the refusal carries `right`,
        the right's name (see NotAllowed).

        RightUnverifiable (a NotAllowed) when Slack could not say: a group it
        could not list might hold them, or it could not read the profile of
        someone listed.
        """
        try:
            standing = self.standing(user_id, people)
        except SlackFactsUnavailable as exc:  # fail closed, and say why
            log.warning(
                "cannot check whether %s may %s: %s",
                user_id,
                doing,
                exc,
                extra={"slack_user": user_id, "right": doing, "standing": "unverifiable"},
            )
            raise RightUnverifiable(
                f"opsbot could not check whether you may {doing} ({exc}). "
                "Nothing was done: try again in a minute.",
                reason=str(exc),
                right=right,
            ) from None
        if standing is Standing.HOLDS:
            return
        log.info(
            "%s may not %s: %s",
            user_id,
            doing,
            standing,
            extra={"slack_user": user_id, "right": doing, "standing": str(standing)},
        )
        if standing is Standing.GUEST:
            raise NotAllowed(
                f"Guests may not {doing}: that needs full membership of the workspace, "
                "even for someone listed.",
                right=right,
            )
        if standing is Standing.DEACTIVATED:
            raise NotAllowed(
                f"Deactivated Slack accounts may not {doing}: Slack shows <@{user_id}> "
                "as deactivated.",
                right=right,
            )
        # Mentions built from configured ids: live on purpose.
        who = [f"<@{u}>" for u in people.users] + [f"<!subteam^{g}>" for g in people.groups]
        raise NotAllowed(f"You may not {doing}. Allowed: {', '.join(who) or nobody}.", right=right)
