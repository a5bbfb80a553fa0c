"""The daily shift handoff: at a configured time, who is on call for the next shift.

Each run posts once and schedules the next day's run under a new job id
(`oncall.handoff:<key>:<local date>`), so every instance computing the next
run at start lands on the same id and nothing is posted twice.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from bot.config import Handoff
from bot.scheduler.registry import job

if TYPE_CHECKING:
    from bot.runtime import Runtime

log = logging.getLogger(__name__)

HANDOFF_JOB = "oncall.handoff"


def handoff_key(handoff: Handoff) -> str:
    """A stable name for a configured handoff (it has no name of its own)."""
    text = f"{handoff.channel}|{handoff.at}|{handoff.timezone}|{handoff.team}"
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def next_run(handoff: Handoff, *, after: datetime) -> datetime:
    """The first time of day `handoff.at` in its time zone strictly after `after`, in UTC."""
    zone = handoff.zone
    local = after.astimezone(zone)
    candidate = datetime.combine(local.date(), handoff.time_of_day, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(
            local.date() + timedelta(days=1), handoff.time_of_day, tzinfo=zone
        )
    return candidate.astimezone(UTC)


def _schedule(runtime: Runtime, handoff: Handoff, *, after: datetime) -> None:
    at = next_run(handoff, after=after)
    key = handoff_key(handoff)
    day = at.astimezone(handoff.zone).date().isoformat()
    runtime.scheduler.schedule(HANDOFF_JOB, at=at, job_id=f"{HANDOFF_JOB}:{key}:{day}", key=key)


def schedule_handoffs(runtime: Runtime) -> None:
    """At start: the next run of every configured handoff."""
    now = runtime.clock.now()
    for handoff in runtime.config.oncall.handoffs:
        _schedule(runtime, handoff, after=now)


@job(HANDOFF_JOB)
def handoff(runtime: Runtime, *, key: str) -> None:
    found = next((h for h in runtime.config.oncall.handoffs if handoff_key(h) == key), None)
    if found is None:
        log.info("handoff %s is no longer configured; dropping it", key)
        return
    now = runtime.clock.now()
    answers = runtime.oncall
    message = answers.report_message(answers.lookup.team(found.team), handoff=True)
    day = now.astimezone(found.zone).date().isoformat()
    answers.post(key=f"handoff:{key}:{day}", channel=found.channel, message=message)
    _schedule(runtime, found, after=now + timedelta(minutes=1))
