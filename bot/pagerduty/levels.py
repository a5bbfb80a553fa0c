"""Which escalation level a PagerDuty incident is at, from what PagerDuty does say.

No incident object says it: REST v2 answers (GET and PUT /incidents) and webhooks
v3 carry the incident's escalation policy and its assignees, and `escalation_level`
is only an input of PUT /incidents/{id}. GET /oncalls, for that policy, says at
which level each person is on call now. The incident is at a level where every
one of its assignees is on call: a level that names two people (primary and
secondary together) is told from the first level, which names only one of them.
One person may still hold several levels (a manager also in the first rota): then
the lowest of them not below the level opsbot last knew, since PagerDuty moves an
unacknowledged incident up, not down.
"""

from __future__ import annotations

from typing import Any

from bot.pagerduty.webhooks import IncidentData

# No policy has more levels than this (PagerDuty allows 20 rules); anything else is noise.
MAX_LEVEL = 1000


def _level(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        level = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return level if 1 <= level <= MAX_LEVEL else None


def current_level(
    incident: IncidentData, oncalls: list[dict[str, Any]], *, known: int | None = None
) -> int | None:
    """The level of the incident's policy at which all of its assignees are on call
    (`oncalls`: GET /oncalls entries), the lowest not below `known` (the level opsbot
    last knew of) when several are, else the highest; None when no level holds them
    all (a reassignment outside the policy, a hand-off since, no assignee at all)."""
    policy = incident.escalation_policy
    assignees = {ref.id for ref in incident.assignees if ref.is_user}
    if policy is None or not assignees:
        return None
    held: dict[str, set[int]] = {user: set() for user in assignees}
    for entry in oncalls:
        if not isinstance(entry, dict):
            continue
        entry_policy, user = entry.get("escalation_policy"), entry.get("user")
        if not isinstance(entry_policy, dict) or str(entry_policy.get("id")) != policy.id:
            continue
        if not isinstance(user, dict) or str(user.get("id")) not in assignees:
            continue
        level = _level(entry.get("escalation_level"))
        if level is not None:
            held[str(user.get("id"))].add(level)
    levels = set.intersection(*held.values())
    if not levels:
        return None
    not_below = [level for level in levels if level >= (known or 1)]
    return min(not_below) if not_below else max(levels)
