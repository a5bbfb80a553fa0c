"""`/incident silence …` as typed, to a window request; BadWindow says what is wrong.

The grammar reads as a sentence:

    silence <route | alarm-glob> [in <duration> | at <time>] for <duration> reason <text>
    silence end <id>

A duration is `90m`, `2h`, `1h30m` or `1d`; a time is `22:00` (today, UTC) or
`2026-12-05T22:00` (UTC unless it carries an offset). The target is a route when
a route has that name, else a glob over alarm names (`prod-db-*`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.clock import parse_time
from bot.maintenance.errors import BadWindow
from bot.slack_text import clip, code

DURATION = re.compile(r"^(?:(\d{1,3})d)?(?:(\d{1,4})h)?(?:(\d{1,5})m)?$")
CLOCK = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
GLOB = re.compile(r"^[A-Za-z0-9_.:/#*?\[\]!+=@-]+$")
MAX_GLOB = 200
# A bracket expression as fnmatch reads it: `]` first in the set is one of its characters.
BRACKETS = re.compile(r"\[!?\]?[^\]]*\]")
MAX_REASON = 500
MAX_AHEAD = timedelta(days=30)


@dataclass(frozen=True)
class WindowRequest:
    target: str  # a route's name or an alarm-name glob
    starts_at: datetime
    minutes: int
    reason: str

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.minutes)


def minutes_of(text: str) -> int:
    """`1h30m` -> 90; BadWindow for anything else (or nothing)."""
    found = DURATION.match(text.strip().lower())
    if not text.strip() or found is None:
        raise BadWindow(f"{code(text)} is not a duration: say e.g. `90m`, `2h`, `1h30m` or `1d`.")
    days, hours, mins = (int(part or 0) for part in found.groups())
    total = days * 1440 + hours * 60 + mins
    if total < 1:
        raise BadWindow("A window lasts at least a minute.")
    return total


def moment_of(text: str, *, now: datetime) -> datetime:
    """`22:00` (today, UTC) or an ISO 8601 time; BadWindow if neither."""
    clock = CLOCK.match(text)
    if clock is not None:
        return now.astimezone(UTC).replace(
            hour=int(clock.group(1)), minute=int(clock.group(2)), second=0, microsecond=0
        )
    moment = parse_time(text)  # None too for a time with no UTC date (`0001-01-01T00:00+05:00`)
    if moment is None:
        raise BadWindow(
            f"{code(text)} is not a time: say e.g. `22:00` (UTC) or `2026-12-05T22:00`."
        )
    return moment


def is_catch_all(glob: str) -> bool:
    """A glob that may match every alarm name: a `*`, and no character a name must have.

    A bracket (`[!~]`, `[a-z]`) names a set of characters, not one a name must
    have, so `[!~]*` counts as `*` does; an unclosed `[` is a literal.
    """
    named = BRACKETS.sub("", glob).replace("*", "").replace("?", "")
    return "*" in glob and not named


def parse_window(words: list[str], *, now: datetime) -> WindowRequest:
    """The words after `silence` (not `end`), as a request; BadWindow if they do not parse."""
    if not words:
        raise BadWindow("`silence` needs a route or an alarm-name glob, e.g. `prod-db-*`.")
    target, rest = words[0], words[1:]
    if len(target) > MAX_GLOB:
        raise BadWindow(f"The route or glob is too long ({MAX_GLOB} characters at most).")
    if not GLOB.match(target):
        raise BadWindow(f"{code(target)} is not a route name or an alarm-name glob.")
    starts_at, used = _start(rest, now=now)
    rest = rest[used:]
    lowered = [w.lower() for w in rest]
    if lowered[:1] != ["for"] or len(rest) < 2:
        raise BadWindow("Say how long the window lasts: `for 2h`.")
    minutes = minutes_of(rest[1])
    rest, lowered = rest[2:], lowered[2:]
    if lowered[:1] != ["reason"]:
        raise BadWindow("Say why, last: `reason <text>`.")
    reason = reason_of(rest[1:])
    return WindowRequest(target=target, starts_at=starts_at, minutes=minutes, reason=reason)


def starts_at_of(words: list[str], *, now: datetime) -> datetime:
    """A window's start said on its own: nothing or `now`, `in <duration>`, `at <time>`,
    or a time alone; BadWindow for anything else (a form's Starts field)."""
    if [w.lower() for w in words] == ["now"]:
        return now
    if len(words) == 1 and words[0].lower() not in ("in", "at"):
        words = ["at", *words]
    starts_at, used = _start(words, now=now)
    if used != len(words):
        raise BadWindow(
            "A start is `now`, `in 30m`, `22:00` or `2026-12-05T22:00` (UTC), and nothing more."
        )
    return starts_at


def reason_of(words: list[str]) -> str:
    """A window's reason from its words; BadWindow when empty or too long."""
    reason = " ".join(words).strip()
    if not reason:
        raise BadWindow("`reason` needs some words: what is being maintained.")
    if len(reason) > MAX_REASON:
        raise BadWindow(f"The reason is too long ({MAX_REASON} characters at most).")
    return reason


def _start(words: list[str], *, now: datetime) -> tuple[datetime, int]:
    """The start `in <duration>` or `at <time>` that `words` begin with (else now), and how
    many words it took."""
    starts_at, used = now, 0
    lowered = [w.lower() for w in words]
    if lowered[:1] == ["in"]:
        if len(words) < 2:
            raise BadWindow("`in` needs a duration, e.g. `in 30m`.")
        starts_at, used = now + timedelta(minutes=minutes_of(words[1])), 2
    elif lowered[:1] == ["at"]:
        if len(words) < 2:
            raise BadWindow("`at` needs a time, e.g. `at 22:00` (UTC).")
        starts_at = moment_of(words[1], now=now)
        if starts_at < now - timedelta(minutes=1):
            raise BadWindow(
                f"{code(words[1])} is in the past ({starts_at:%Y-%m-%d %H:%M} UTC): "
                "a window starts now or later."
            )
        starts_at, used = max(starts_at, now), 2
    if starts_at - now > MAX_AHEAD:
        raise BadWindow(f"A window may be planned {MAX_AHEAD.days} days ahead at most.")
    return starts_at, used


def window_id(text: str) -> int:
    """`3` or `#3`; BadWindow otherwise.

    ASCII digits only: `isdigit` alone takes `²`, which int() refuses.
    """
    digits = text.strip().removeprefix("#")
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 9:
        raise BadWindow(f"{code(clip(text, 40))} is not a window number, e.g. `3`.")
    return int(digits)
