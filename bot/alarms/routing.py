"""Alarm routing: the first rule that matches wins; the last rule matches everything."""

from __future__ import annotations

from fnmatch import fnmatchcase

from bot.config import AlarmMatch, AlarmRoute


def _glob(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatchcase(value, pattern)


def matches(rule: AlarmMatch, *, alarm_name: str, account: str, region: str) -> bool:
    return (
        _glob(rule.alarm_name, alarm_name)
        and _glob(rule.account, account)
        and _glob(rule.region, region)
    )


def route_for(
    routes: list[AlarmRoute], *, alarm_name: str, account: str, region: str
) -> AlarmRoute:
    """The first rule matching the alarm (config validation guarantees a catch-all last)."""
    for route in routes:
        if matches(route.match, alarm_name=alarm_name, account=account, region=region):
            return route
    return routes[-1]
