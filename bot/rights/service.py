"""The rights gate: `require_*` raises RightMissing naming the missing right, or returns.

Incident rights are per route (`rights.incidents`, overridden by a route's own
`rights`); administration is `rights.admins`, which alone acts on incidents of
a route no longer in the config. Guests hold an incident right
only where the route says `guests: true`, or where they are listed by id.

An incident's channels are the one its alarm posts to and, once started, its
own (bot/incidents/channels.py): opsbot invites the responders and who is on
call there, and it is private when the first is, so its members are trusted
as the first's are. `channel_members` counts the members of either, and
whoever can read either sees the incident.
"""

from __future__ import annotations

import logging

from bot.config import Config, IncidentRights, People, Who
from bot.rights.errors import RightMissing, SlackFactsUnavailable
from bot.rights.workspace import Workspace
from bot.slack_text import code, escape

log = logging.getLogger(__name__)

RESPOND_RIGHT = "respond"
DECLARE_RIGHT = "declare"
SILENCE_RIGHT = "silence"


def describe(who: Who | People, *, channels: tuple[str, ...] = ()) -> str:
    """The people a right names, as Slack shows them."""
    parts = [f"<@{u}>" for u in who.users] + [f"<!subteam^{g}>" for g in who.groups]
    if isinstance(who, Who):
        if who.everyone:
            parts.append("every full member of the workspace")
        elif who.channel_members and channels:
            parts.append("members of " + " or ".join(_channel_ref(c) for c in channels))
    return ", ".join(parts) or "nobody"


def _channel_ref(channel: str) -> str:
    return channel if channel.startswith("#") else f"<#{channel}>"


class Rights:
    def __init__(self, *, config: Config, workspace: Workspace) -> None:
        self.config = config
        self.workspace = workspace

    def _in_set(self, user_id: str, who: Who | People, *, channels: tuple[str, ...]) -> bool:
        if user_id in who.users:
            return True
        if isinstance(who, Who) and who.everyone:
            return True
        if isinstance(who, Who) and who.channel_members:
            members = (user_id in self.workspace.channel_members(c) for c in channels)
            if any(members):
                return True
        return any(user_id in self.workspace.group_members(g) for g in who.groups)

    def holds(
        self, user_id: str, who: Who | People, *, channels: tuple[str, ...], guests: bool
    ) -> bool:
        """Whether `user_id` is among `who`; SlackFactsUnavailable if Slack cannot say.

        `channels` are those whose members `channel_members` counts.
        """
        if user_id in who.users:
            return True  # named by id: no need to ask Slack anything
        if not guests and self.workspace.member(user_id).is_guest:
            return False
        return self._in_set(user_id, who, channels=channels)

    def may_hold_somewhere(self, user_id: str, who: Who | People, *, guests: bool) -> bool:
        """Whether `user_id` is among `who` for some channel; SlackFactsUnavailable as `holds`.

        A set of channel members holds anyone who may be in the channel: full
        members, and guests where `guests` lets them.
        """
        if user_id in who.users:
            return True
        if not guests and self.workspace.member(user_id).is_guest:
            return False
        if isinstance(who, Who) and (who.everyone or who.channel_members):
            return True
        return any(user_id in self.workspace.group_members(g) for g in who.groups)

    def incident_rights(self, route_name: str | None) -> IncidentRights:
        return self.config.incident_rights(route_name)

    def require_incident(
        self,
        user_id: str,
        *,
        right: str,
        route_name: str | None,
        channel: str,
        doing: str,
        minutes: int | None = None,
        own_channel: str | None = None,
        names_route: bool = True,
    ) -> None:
        """Raise RightMissing unless `user_id` holds `right` on the route's incidents.

        `channel` is the route's (or the incident's alert) channel; `own_channel`
        the incident's own channel, whose members count as the first's. A route
        no longer in the config (renamed or removed) took its rights with it:
        only admins act on its incidents, as on maintenance windows over it; the
        refusal names the route unless `names_route` is False (someone who cannot
        see the incident is told nothing of it but its number).
        """
        if self.config.route_gone(route_name):
            gone = f" on route {code(route_name)} (no route has that name now)"
            self.require_admin(user_id, doing=doing + (gone if names_route else ""))
            return
        rights = self.incident_rights(route_name)
        who: Who = getattr(rights, right)
        where = f"route `{route_name}`" if route_name else "incidents"
        name = f"`{right}` on {where}"
        try:
            channels = (channel, own_channel) if own_channel else (channel,)
            allowed = self.holds(user_id, who, channels=channels, guests=rights.guests)
            guest = not allowed and not rights.guests and self.workspace.member(user_id).is_guest
        except SlackFactsUnavailable as exc:
            raise RightMissing(
                f"opsbot cannot check your right to {doing} ({escape(exc)}); nothing was done. "
                "Try again in a minute.",
                right=name,
            ) from None
        if guest:
            raise RightMissing(
                f"Guests may view incidents but not {doing}: {where} gives guests no rights. "
                "Nothing was done.",
                right=name,
            )
        if not allowed:
            raise RightMissing(
                f"You may not {doing}: that needs the {name} right, held by "
                f"{describe(who, channels=channels)}. Nothing was done.",
                right=name,
            )
        limit = getattr(who, "max_min", None)
        if minutes is not None and limit is not None and minutes > limit:
            raise RightMissing(
                f"You may silence {where} for {limit} minutes at most, not {minutes}. "
                "Nothing was done.",
                right=f"{name} (up to {limit} min)",
            )

    def require_admin(self, user_id: str, *, doing: str) -> None:
        """Raise RightMissing unless `user_id` is one of `rights.admins`."""
        admins = self.config.rights.admins
        try:
            allowed = self.holds(user_id, admins, channels=(), guests=False)
        except SlackFactsUnavailable as exc:
            raise RightMissing(
                f"opsbot cannot check your right to {doing} ({escape(exc)}); nothing was done.",
                right="`admin`",
            ) from None
        if not allowed:
            raise RightMissing(
                f"You may not {doing}: that needs the `admin` right, held by "
                f"{describe(admins)} (`rights.admins`). Nothing was done.",
                right="`admin`",
            )

    def cli_user(self, identity: str) -> str:
        """The Slack user the CLI's `identity` acts as; RightMissing if `rights.cli` has none."""
        user_id = self.config.rights.cli.get(identity)
        if user_id is None:
            raise RightMissing(
                f"`{identity}` is not a known CLI identity: map it to a Slack user in the "
                f"config's `rights.cli` (e.g. `{identity}: U0123ABCD`), whose rights then apply.",
                right="`rights.cli` mapping",
            )
        # No click vouches for the account the CLI acts as: Slack deactivating it ends its
        # rights here as in Slack. Slack's word is a second check after a verified, mapped
        # identity, and the CLI is a tool of outages: unread, it is said, not refused.
        try:
            deactivated = self.workspace.member(user_id).deactivated
        except SlackFactsUnavailable as exc:
            log.warning(
                "CLI identity %s acts as %s, whose Slack account could not be read (%s)",
                identity,
                user_id,
                exc,
                extra={"identity": identity, "slack_user": user_id},
            )
            return user_id
        if deactivated:
            raise RightMissing(
                f"`{identity}` acts as <@{user_id}>, whose Slack account is deactivated: a "
                "deactivated account holds no right. Map the identity to someone else in "
                "the config's `rights.cli`. Nothing was done.",
                right="an active Slack account",
            )
        return user_id

    def may_see(self, user_id: str, *channels: str | None) -> bool:
        """Whether `user_id` can read one of `channels` in Slack (and so an incident there).

        An incident is seen from its alert channel or from its own (None: it has none).
        """
        return any(c is not None and self._reads(user_id, c) for c in channels)

    def _reads(self, user_id: str, channel: str) -> bool:
        try:
            public = not self.workspace.is_private(channel)
            if public and not self.workspace.member(user_id).is_guest:
                return True
            return user_id in self.workspace.channel_members(channel)
        except SlackFactsUnavailable:
            return False
