"""Which of the command table's rights (bot/commands.py) a person holds, for `/opsbot help`.

Help shows what someone may try; each command still checks its own right
where it acts (bot/rights, bot/apps/access.py), so this can only hide or show
a line, never grant anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from bot.apps.access import Access
from bot.commands import Right
from bot.config import Config
from bot.rights.errors import SlackFactsUnavailable
from bot.rights.service import Rights

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Held:
    rights: frozenset[Right]
    unsure: bool  # Slack could not say for some right: treated as not held


def rights_held(*, user_id: str, config: Config, rights: Rights, access: Access) -> Held:
    """The rights `user_id` holds somewhere (on some route, on some app environment)."""
    routes = [None, *(route.label for route in config.alarm_routes)]
    incident = [config.incident_rights(name) for name in routes]
    deployers = [
        environment.deployers
        for app in config.apps.values()
        for environment in app.environments.values()
    ]
    checks: dict[Right, Callable[[], bool]] = {
        Right.MEMBER: lambda: not rights.workspace.member(user_id).is_guest,
        Right.DECLARE: lambda: any(
            rights.may_hold_somewhere(user_id, r.declare, guests=r.guests) for r in incident
        ),
        Right.RESPOND: lambda: any(
            rights.may_hold_somewhere(user_id, r.respond, guests=r.guests) for r in incident
        ),
        Right.SILENCE: lambda: any(
            rights.may_hold_somewhere(user_id, r.silence, guests=r.guests) for r in incident
        ),
        Right.DEPLOY: lambda: any(access.holds(user_id, people) for people in deployers),
        Right.ADMIN: lambda: rights.holds(user_id, config.rights.admins, channels=(), guests=False),
    }
    held = {Right.ANYONE}
    unsure = False
    for right, check in checks.items():
        try:
            if check():
                held.add(right)
        except SlackFactsUnavailable as exc:
            unsure = True
            log.warning("help for %s: cannot check the %s right (%s)", user_id, right, exc)
    return Held(rights=frozenset(held), unsure=unsure)
