"""Which app environment an alarm belongs to, from the configuration alone.

An environment claims an alarm by name (`alarms:` globs, checked first, in
the order of the file) or, with nothing configured, by the alarm's
dimensions: the ECS `ClusterName`/`ServiceName` of its service, or the
`LoadBalancer`/`TargetGroup` it is given; only an alarm of the account and
region the apps are pinned to (`aws:`), when they are. A `ServiceName` without
a `ClusterName` claims only when one environment runs a service of that name.
Nothing here calls AWS: it runs on the paging path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import cache

from bot.config import AppEnvironment, Config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    app: str
    env: str
    by: str  # how: "alarms glob", "ECS service", "load balancer", "target group"

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"


def _environments(config: Config) -> Iterable[tuple[str, str, AppEnvironment]]:
    for app_name, app in config.apps.items():
        for env_name, settings in app.environments.items():
            yield app_name, env_name, settings


def _name(value: str) -> str:
    """A cluster or service given as a name or an ARN, as CloudWatch names it."""
    return value.rsplit("/", 1)[-1]


def _after(value: str, marker: str) -> str:
    """`app/<name>/<id>` of a load balancer ARN, `targetgroup/<name>/<id>` of a target group's."""
    at = value.find(marker)
    return value[at:] if at >= 0 else value


def _serves(settings: AppEnvironment, dimensions: dict[str, str]) -> bool:
    """Whether the dimensions name the environment's ECS service (its cluster, when given)."""
    service = dimensions.get("ServiceName")
    if service is None or service != _name(settings.service):
        return False
    cluster = dimensions.get("ClusterName")
    return cluster is None or cluster == _name(settings.cluster)


def _by_dimensions(settings: AppEnvironment, dimensions: dict[str, str]) -> str | None:
    if _serves(settings, dimensions):
        return "ECS service"
    balancer = dimensions.get("LoadBalancer")
    if settings.load_balancer and balancer == _after(settings.load_balancer, "app/"):
        return "load balancer"
    group = dimensions.get("TargetGroup")
    if settings.target_group and group == _after(settings.target_group, "targetgroup/"):
        return "target group"
    return None


def claim_for(
    config: Config,
    *,
    alarm_name: str,
    dimensions: Iterable[tuple[str, str]],
    account: str | None = None,
    region: str | None = None,
) -> Claim | None:
    """The app environment the alarm belongs to, or None (most alarms of a big account).

    With the apps pinned to an account or region (`aws:`), an alarm of another one
    (`account`, `region`: the alarm's, from its ARN) is none of theirs, whatever its
    name: a same-named alarm or service lives there, and its undo buttons would change
    the pinned environment.
    """
    pinned = config.aws
    if pinned.account_id is not None and account != pinned.account_id:
        return None
    if pinned.region is not None and region != pinned.region:
        return None
    for app, env, settings in _environments(config):
        if any(fnmatchcase(alarm_name, glob) for glob in settings.alarms):
            return Claim(app=app, env=env, by="alarms glob")
    named = dict(dimensions)
    if not named:
        return None
    if "ClusterName" not in named:
        sharing = [
            f"{app}/{env}"
            for app, env, settings in _environments(config)
            if _serves(settings, named)
        ]
        if len(sharing) > 1:
            # The same service name in two clusters (checkout in prod and in staging):
            # which one the alarm is about cannot be told, and the first in the file
            # would get the other's changes and undo buttons under its incident. Its
            # load balancer or target group, when given, still tells.
            service = named.pop("ServiceName")
            claim = _first_by_dimensions(config, named)
            if claim is None:
                _note_shared_service(alarm_name, service, tuple(sharing))
            return claim
    return _first_by_dimensions(config, named)


def _first_by_dimensions(config: Config, named: dict[str, str]) -> Claim | None:
    for app, env, settings in _environments(config):
        how = _by_dimensions(settings, named)
        if how is not None:
            return Claim(app=app, env=env, by=how)
    return None


# Alarms already logged as claimed by none of the environments sharing their service
# name: every notification of the alarm asks again, and one line per alarm (per process)
# says all there is. Bounded, as alarm names come from outside.
_NOTED_AT_MOST = 1024
_noted: set[tuple[str, str, tuple[str, ...]]] = set()


def _note_shared_service(alarm_name: str, service: str, sharing: tuple[str, ...]) -> None:
    key = (alarm_name, service, sharing)
    if key in _noted:
        return
    if len(_noted) >= _NOTED_AT_MOST:
        _noted.clear()
    _noted.add(key)
    log.warning(
        "alarm %r names the ECS service %r without a ClusterName, and %s all run a service "
        "of that name: claimed by none of them (no recent changes or undo buttons on its "
        "incident); give the alarm a ClusterName dimension or list it under one's alarms:",
        alarm_name,
        service,
        ", ".join(sharing),
        extra={"alarm_name": alarm_name, "ecs_service": service, "candidates": list(sharing)},
    )


# -- globs that could claim the same alarm ---------------------------------------------------

# A glob as tokens: "*", "?", a literal character, or a character set ("[", chars, negated).
Token = tuple[str, frozenset[str], bool]


def _tokens(glob: str) -> tuple[Token, ...]:
    tokens: list[Token] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if char == "*":
            if not tokens or tokens[-1][0] != "*":
                tokens.append(("*", frozenset(), False))
        elif char == "?":
            tokens.append(("?", frozenset(), False))
        elif char == "[" and "]" in glob[i + 2 :]:
            end = glob.index("]", i + 2)
            body = glob[i + 1 : end]
            negated = body.startswith("!")
            body = body[1:] if negated else body
            chars: set[str] = set()
            j = 0
            while j < len(body):
                if j + 2 < len(body) and body[j + 1] == "-":
                    low, high = ord(body[j]), ord(body[j + 2])
                    chars.update(chr(c) for c in range(low, min(high, low + 512) + 1))
                    j += 3
                else:
                    chars.add(body[j])
                    j += 1
            tokens.append(("[", frozenset(chars), negated))
            i = end
        else:
            tokens.append(("c", frozenset(char), False))
        i += 1
    return tuple(tokens)


def _one_char_in_both(a: Token, b: Token) -> bool:
    if a[0] == "?" or b[0] == "?":
        return True
    a_neg, b_neg = a[0] == "[" and a[2], b[0] == "[" and b[2]
    if a_neg and b_neg:
        return True  # two negated sets always leave some character to both
    if a_neg:
        return not b[1] <= a[1]
    if b_neg:
        return not a[1] <= b[1]
    return bool(a[1] & b[1])


def globs_overlap(first: str, second: str) -> bool:
    """Whether some alarm name matches both globs (fnmatch's `*`, `?` and `[...]`)."""
    a, b = _tokens(first), _tokens(second)

    @cache
    def both(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i][0] == "*":
            return both(i + 1, j) or (j < len(b) and both(i, j + 1))
        if j < len(b) and b[j][0] == "*":
            return both(i, j + 1) or (i < len(a) and both(i + 1, j))
        if i == len(a) or j == len(b):
            return False
        return _one_char_in_both(a[i], b[j]) and both(i + 1, j + 1)

    return both(0, 0)


def overlapping_globs(config: Config) -> list[str]:
    """One line per pair of globs of two environments that could claim the same alarm."""
    globs = [
        (f"apps.{app}.environments.{env}.alarms[{n}]", (app, env), glob)
        for app, env, settings in _environments(config)
        for n, glob in enumerate(settings.alarms)
    ]
    found = []
    for index, (key, owner, glob) in enumerate(globs):
        for other_key, other_owner, other_glob in globs[index + 1 :]:
            if owner != other_owner and globs_overlap(glob, other_glob):
                found.append(
                    f"{key} {glob!r} and {other_key} {other_glob!r} could match the same alarm: "
                    f"{owner[0]}/{owner[1]} (first in the file) claims it"
                )
    return found
