"""The daily shift handoff: at a configured time, who is on call for the next shift.

Each run schedules the next day's run under a new job id
(`oncall.handoff:<key>:<local date>`), so every instance computing the next
run at start lands on the same id, and then posts under the key of the local
date it was scheduled for: a run that fails leaves the later days scheduled, and
one tried again (or run late, past local midnight) posts that day's handoff once.
A start also schedules today's run again when its time has passed and nothing
was posted for today (a run lost with a crash, or given up): it runs at once.
Not for a handoff added or edited since its last post, which posts first at its
next time: see `_not_owed_because`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

import sqlalchemy as sa
from sqlalchemy.orm import Session

from bot.clock import Clock
from bot.config import Config, Handoff
from bot.oncall import render
from bot.oncall.flows import OnCallAnswers
from bot.outbox.models import SlackMessage
from bot.pagerduty.errors import PagerDutyError
from bot.scheduler.registry import JobFunction
from bot.scheduler.scheduler import JobScheduler

log = logging.getLogger(__name__)

HANDOFF_JOB = "oncall.handoff"


@dataclass(frozen=True)
class HandoffDeps:
    """What the handoff job works with, built by the composition root."""

    config: Config
    clock: Clock
    scheduler: JobScheduler
    answers: OnCallAnswers


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


def post_key(key: str, day: str) -> str:
    """The key of the handoff message of `day` (a local date): one message a day."""
    return f"handoff:{key}:{day}"


def _schedule_at(deps: HandoffDeps, handoff: Handoff, *, at: datetime) -> None:
    key = handoff_key(handoff)
    day = at.astimezone(handoff.zone).date().isoformat()
    deps.scheduler.schedule(
        HANDOFF_JOB, at=at, job_id=f"{HANDOFF_JOB}:{key}:{day}", key=key, day=day
    )


def _schedule(deps: HandoffDeps, handoff: Handoff, *, after: datetime) -> None:
    _schedule_at(deps, handoff, at=next_run(handoff, after=after))


def schedule_handoffs(deps: HandoffDeps) -> None:
    """At start: the next run of every configured handoff, and today's if it is owed."""
    now = deps.clock.now()
    for handoff in deps.config.oncall.handoffs:
        _schedule(deps, handoff, after=now)
        _catch_up(deps, handoff, now=now)


def _catch_up(deps: HandoffDeps, handoff: Handoff, *, now: datetime) -> None:
    """Today's run, due at once, when its time passed earlier today (local) and it is
    owed (`_not_owed_because`): a run lost with a crash or given up comes back.

    Only today's: a handoff from an earlier day is stale once the next is due. Its
    job id and message key are the day's, so a run still stored or under way on
    another instance is replaced, or updates the same message, rather than posting
    twice.
    """
    zone = handoff.zone
    local = now.astimezone(zone)
    due = datetime.combine(local.date(), handoff.time_of_day, tzinfo=zone)
    if due > local:
        return  # still ahead today: the next run is today's
    key = handoff_key(handoff)
    day = local.date().isoformat()
    others = {handoff_key(h) for h in deps.config.oncall.handoffs} - {key}
    with deps.answers.sessions() as db_session:
        why = _not_owed_because(db_session, handoff, key=key, day=day, others=others)
    extra = {"handoff": key, "day": day, "channel": handoff.channel}
    if why is not None:
        log.info("handoff %s of %s is not run at start: %s", key, day, why, extra=extra)
        return
    log.info("handoff %s of %s has no message yet: running it now", key, day, extra=extra)
    _schedule_at(deps, handoff, at=due.astimezone(UTC))


def _not_owed_because(
    db_session: Session, handoff: Handoff, *, key: str, day: str, others: set[str]
) -> str | None:
    """Why today's handoff of `key` is not owed, or None when it is.

    The key hashes the handoff's settings, so editing one makes a new key. A key
    that never posted is a handoff added or edited since its last run: no run of
    it was scheduled for today, and its first post is at its next time. A handoff
    of today in the same channel under a key no longer configured is this one's
    before an edit (an edit undone the same day): posting again would repeat it.
    """
    posted = db_session.scalar(
        sa.select(SlackMessage.id).where(SlackMessage.key == post_key(key, day))
    )
    if posted is not None:
        return "posted"
    ever = db_session.scalar(
        sa.select(SlackMessage.id).where(SlackMessage.key.startswith(post_key(key, ""))).limit(1)
    )
    if ever is None:
        return "never posted with its current settings (added or edited): it posts at its next time"
    in_channel = db_session.scalars(
        sa.select(SlackMessage.key).where(
            SlackMessage.key.like(post_key("%", day)),
            sa.or_(
                SlackMessage.channel == handoff.channel,
                SlackMessage.channel_id == handoff.channel,
            ),
        )
    ).all()
    replaced = [k for k in in_channel if k.split(":")[1] not in others]
    if replaced:
        return f"posted today in its channel before an edit (as {replaced[0]})"
    return None


def handoff(deps: HandoffDeps, *, key: str, day: str | None = None) -> None:
    """Schedule the next day's handoff, then post the one of `day` (the local date it is for).

    A job stored before `day` was carried posts under the local date of its run.
    """
    found = next((h for h in deps.config.oncall.handoffs if handoff_key(h) == key), None)
    if found is None:
        log.info("handoff %s is no longer configured; dropping it", key)
        return
    now = deps.clock.now()
    _schedule(deps, found, after=now + timedelta(minutes=1))
    answers = deps.answers
    day = day or now.astimezone(found.zone).date().isoformat()
    target = answers.lookup.team(found.team)
    try:
        report = answers.lookup.report(target)
    except PagerDutyError as exc:
        # The channel hears at once that nobody can say, and the run raises, so the
        # scheduler tries it again (30 s, doubling): the post under the day's key is
        # then updated in place with who is on call, or the run is given up, counted.
        unavailable = render.unavailable_message(target.title, str(exc))
        answers.post(key=post_key(key, day), channel=found.channel, message=unavailable)
        raise
    message = render.handoff_message(report)
    answers.post(key=post_key(key, day), channel=found.channel, message=message)


def jobs(deps: HandoffDeps) -> dict[str, JobFunction]:
    """The on-call jobs by name, bound to `deps`."""
    return {HANDOFF_JOB: partial(handoff, deps)}
