"""Who is on call now and who is next, per escalation policy level, from PagerDuty's /oncalls.

A name is looked up as a team of the configuration first (`oncall.teams`),
then as a PagerDuty schedule, then as an escalation policy.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bot.clock import Clock, parse_time
from bot.config import Config
from bot.oncall.errors import OnCallError
from bot.pagerduty.errors import PagerDutyUnavailable
from bot.pagerduty.rest import PagerDutyRest
from bot.pagerduty.webhooks import Reference
from bot.people.directory import NOT_CONFIGURED, PeopleDirectory
from bot.slack_text import code

SLACK_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)>$")


@dataclass(frozen=True)
class Target:
    """What to ask PagerDuty about, and what to call it."""

    title: str
    escalation_policy_ids: tuple[str, ...] = ()
    schedule_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shift:
    person: str  # a Slack mention where the email maps, else the PagerDuty name
    schedule: str | None
    start: datetime | None  # None: since before anyone remembers
    end: datetime | None  # None: always on call


@dataclass(frozen=True)
class Level:
    number: int
    now: list[Shift]
    next: list[Shift]


@dataclass(frozen=True)
class PolicyOnCall:
    name: str
    levels: list[Level]


@dataclass(frozen=True)
class OnCallReport:
    target: Target
    at: datetime
    policies: list[PolicyOnCall] = field(default_factory=list)


@dataclass(frozen=True)
class _Entry:
    policy: Reference
    level: int
    user: Reference
    schedule: str | None
    start: datetime | None
    end: datetime | None

    def covers(self, moment: datetime) -> bool:
        return (self.start is None or self.start <= moment) and (
            self.end is None or self.end > moment
        )


def _ref(data: Any) -> Reference | None:
    if not isinstance(data, dict) or not data.get("id"):
        return None
    name = data.get("summary") or data.get("name") or data["id"]
    return Reference(id=str(data["id"]), name=str(name), type=str(data.get("type") or ""))


def _entries(raw: list[dict[str, Any]]) -> list[_Entry]:
    entries = []
    for item in raw:
        policy, user = _ref(item.get("escalation_policy")), _ref(item.get("user"))
        if policy is None or user is None:
            continue
        schedule = _ref(item.get("schedule"))
        entries.append(
            _Entry(
                policy=policy,
                level=int(item.get("escalation_level") or 1),
                user=user,
                schedule=schedule.name if schedule else None,
                start=parse_time(item.get("start")),
                end=parse_time(item.get("end")),
            )
        )
    return entries


def _until(entry: _Entry, same_slot: list[_Entry]) -> datetime | None:
    """When `entry`'s person stops: through back-to-back shifts of the same person."""
    end = entry.end
    extended = True
    while end is not None and extended:
        extended = False
        for other in same_slot:
            if other.user.id == entry.user.id and other.start == end and other.end != end:
                end, extended = other.end, True
                break
    return end


class OnCallLookup:
    def __init__(
        self,
        *,
        pagerduty: PagerDutyRest | None,
        people: PeopleDirectory,
        config: Config,
        clock: Clock,
    ) -> None:
        self.pagerduty = pagerduty
        self.people = people
        self.config = config
        self.clock = clock

    def _rest(self) -> PagerDutyRest:
        if self.pagerduty is None:
            raise PagerDutyUnavailable(NOT_CONFIGURED)
        return self.pagerduty

    def team(self, name: str) -> Target:
        team = self.config.oncall.teams[name]
        return Target(
            title=name,
            escalation_policy_ids=tuple(team.escalation_policies),
            schedule_ids=tuple(team.schedules),
        )

    def _named(self, resource: str, name: str) -> list[dict[str, Any]]:
        found = self._rest().search(resource, name)
        exact = [f for f in found if str(f.get("name", "")).lower() == name.lower()]
        return exact or found

    def target(self, name: str | None) -> Target:
        """What `/oncall [name]` means; OnCallError names what exists when nothing matches."""
        oncall = self.config.oncall
        if not name:
            if oncall.default_team is not None:
                return self.team(oncall.default_team)
            return Target(title="every escalation policy")
        if name.lower() in oncall.teams:
            return self.team(name.lower())
        for resource, kind in (("schedules", "schedule"), ("escalation_policies", "policy")):
            found = self._named(resource, name)
            if len(found) == 1:
                what = "schedule" if kind == "schedule" else "escalation policy"
                title = f"{found[0].get('name') or name} ({what})"
                ids = (str(found[0]["id"]),)
                if kind == "schedule":
                    return Target(title=title, schedule_ids=ids)
                return Target(title=title, escalation_policy_ids=ids)
            if len(found) > 1:
                names = ", ".join(code(f.get("name")) for f in found[:10])
                raise OnCallError(
                    f"{code(name)} matches several {resource.replace('_', ' ')}: {names}."
                )
        teams = ", ".join(code(t) for t in sorted(oncall.teams)) or "none configured"
        raise OnCallError(
            f"No team, schedule or escalation policy is called {code(name)}. Teams: {teams}."
        )

    def report(self, target: Target) -> OnCallReport:
        """Who is on call for `target` now and who comes next, per policy and level."""
        now = self.clock.now()
        raw = self._rest().oncalls(
            since=now,
            until=now + timedelta(hours=self.config.oncall.lookahead_h),
            escalation_policy_ids=target.escalation_policy_ids,
            schedule_ids=target.schedule_ids,
        )
        slots: dict[tuple[str, int], list[_Entry]] = defaultdict(list)
        policies: dict[str, str] = {}
        for entry in _entries(raw):
            slots[(entry.policy.id, entry.level)].append(entry)
            policies[entry.policy.id] = entry.policy.name
        shown: dict[str, list[Level]] = defaultdict(list)
        for (policy_id, level), entries in sorted(slots.items(), key=lambda kv: kv[0][1]):
            current = [e for e in entries if e.covers(now)]
            current_users = {e.user.id for e in current}
            later = [
                e
                for e in entries
                if e.start is not None and e.start > now and e.user.id not in current_users
            ]
            first = min((e.start for e in later if e.start is not None), default=None)
            upcoming = [e for e in later if e.start == first]
            shown[policy_id].append(
                Level(
                    number=level,
                    now=[self._shift(e, until=_until(e, entries)) for e in current],
                    next=[self._shift(e, until=e.end) for e in upcoming],
                )
            )
        return OnCallReport(
            target=target,
            at=now,
            policies=[
                PolicyOnCall(name=policies[pid], levels=levels)
                for pid, levels in sorted(shown.items(), key=lambda kv: policies[kv[0]].lower())
            ],
        )

    def _shift(self, entry: _Entry, *, until: datetime | None) -> Shift:
        return Shift(
            person=self.people.display(entry.user),
            schedule=entry.schedule,
            start=entry.start,
            end=until,
        )

    def first_responders(self, team: str) -> list[str]:
        """Slack user ids of who is on call now at the first level of `team`'s policies.

        Only those PagerDuty users that map to a Slack user (bot/people) are named.
        """
        report = self.report(self.team(team))
        found: list[str] = []
        for policy in report.policies:
            levels = sorted(policy.levels, key=lambda level: level.number)
            for shift in levels[0].now if levels else []:
                for user_id in SLACK_MENTION.findall(shift.person):
                    if user_id not in found:
                        found.append(user_id)
        return found
