"""What an incident change sends out: its Slack message, its thread, its page.

Everything here goes through the outbox in the caller's transaction.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.incidents import render
from bot.incidents import service as incidents
from bot.incidents.models import MAX_SUPERSEDED_IDS, OPEN, RESOLVED, Incident, IncidentEvent
from bot.outbox import service as outbox
from bot.outbox.models import BULK, PERSON
from bot.pagerduty.webhooks import IncidentData
from bot.people import service as people
from bot.scheduler.deferred import cancel_after_commit, schedule_after_commit
from bot.slack_dates import utc_text
from bot.slack_text import escape, keep_mentions

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 39_000  # Slack cuts a message past 40,000
DEFAULT_WINDOW_MIN = 120.0  # alarms.changes_window_min, for incidents opened without it
PRIORITY_CHARS = 80  # Incident.priority's column: PagerDuty's priority names are its users'

# Job names (see bot/incidents/jobs.py) and the ids one incident's jobs use.
REMIND_JOB = "incidents.remind"
ESCALATE_JOB = "incidents.escalate"
SILENCE_END_JOB = "incidents.silence_end"
ARCHIVE_CHANNEL_JOB = "incidents.archive_channel"

# Timeline events whose arrival on a resolved incident calls for a postmortem draft.
RESOLVING = frozenset({"resolved", "alarm_state"})


def job_id(incident: Incident, job: str) -> str:
    return f"{incident.message_key}:{job.rsplit('.', 1)[-1]}"


class ExtraSection(Protocol):
    def __call__(
        self, db_session: Session, *, incident: Incident, now: datetime, new: bool
    ) -> list[dict[str, Any]]: ...


# Sections a domain above this one adds to every incident message ("Changes before
# this alarm"), in the caller's transaction: the composition root registers them, so
# incidents need not import the domains that own them.
EXTRA_SECTIONS: list[ExtraSection] = []


def register_section(section: ExtraSection) -> None:
    """Add `section` to every incident message (once, however often it is registered)."""
    if section not in EXTRA_SECTIONS:
        EXTRA_SECTIONS.append(section)


class PostmortemChanges(Protocol):
    def __call__(
        self, db_session: Session, *, incident: Incident, now: datetime
    ) -> list[tuple[datetime, str]]: ...


# What changed before the incident, as (when, opsbot's mrkdwn) rows of its postmortem
# draft's timeline: registered by the composition root, like EXTRA_SECTIONS.
POSTMORTEM_CHANGES: list[PostmortemChanges] = []


def register_postmortem_changes(changes: PostmortemChanges) -> None:
    if changes not in POSTMORTEM_CHANGES:
        POSTMORTEM_CHANGES.append(changes)


class PageHold(Protocol):
    def __call__(self, db_session: Session, *, incident: Incident, now: datetime) -> str | None: ...


# What may hold a page owed now (a maintenance window over the alarm): each says why
# it holds it, as a clause for the thread, having noted it; or None. Registered by the
# domain that owns the hold, like EXTRA_SECTIONS, so incidents need not import it.
PAGE_HOLDS: list[PageHold] = []


def register_page_hold(hold: PageHold) -> None:
    if hold not in PAGE_HOLDS:
        PAGE_HOLDS.append(hold)


class Listing(Protocol):
    def __call__(self, db_session: Session, *, incident: Incident, now: datetime) -> None: ...


# Messages above an incident's own that list it (an alarm group's parent): told when
# what they show of it changes by a person's hand or PagerDuty's (acknowledged or
# not, resolved, reopened), or by a new page (no longer acknowledged, `page_trigger`).
# Registered by the domain that owns them, like PAGE_HOLDS.
LISTINGS: list[Listing] = []


def register_listing(listing: Listing) -> None:
    if listing not in LISTINGS:
        LISTINGS.append(listing)


def _tell_listings(db_session: Session, *, incident: Incident, now: datetime) -> None:
    for listing in LISTINGS:
        listing(db_session, incident=incident, now=now)


def _held(db_session: Session, *, incident: Incident, now: datetime) -> str | None:
    return next(
        (why for hold in PAGE_HOLDS if (why := hold(db_session, incident=incident, now=now))),
        None,
    )


def sync_message(
    db_session: Session,
    *,
    incident: Incident,
    now: datetime,
    new: bool = False,
    clicked_at: datetime | None = None,
    thread_of: str | None = None,
    priority: int = BULK,
) -> None:
    """Post the incident's message, or update it in place, with its current state.

    `new`: the incident was created in this transaction (nothing to look up).
    `thread_of`: a new message is posted in the thread of the message under that
    key (an alarm listed in a group, bot/alarms/flows.py). `priority`: its lane when
    nobody clicked (LATER for an alarm whose group's message shows its state).
    `clicked_at`: the update shows the effect of a click made then (measured
    when it reaches Slack: opsbot_click_to_effect_seconds), so it goes in the
    outbox's PERSON lane, before bulk work.
    """
    extra = [
        block
        for section in EXTRA_SECTIONS
        for block in section(db_session, incident=incident, now=now, new=new)
    ]
    message = render.incident_message(incident, extra_blocks=extra)
    if clicked_at is not None:
        message = {**message, outbox.CLICKED_AT: clicked_at.isoformat()}
        priority = PERSON
    outbox.post_or_update(
        db_session,
        key=incident.message_key,
        channel=incident.channel,
        message=message,
        now=now,
        new_key=new,
        priority=priority,
        parent_key=thread_of,
    )
    if incident.slack_channel_id is not None and incident.has_live_channel:
        # The pinned copy in the incident's own channel shows the same state and buttons.
        pinned = {k: v for k, v in message.items() if k != outbox.CLICKED_AT}
        outbox.post_or_update(
            db_session,
            key=incident.channel_key,
            channel=incident.slack_channel_id,
            message=pinned,
            now=now,
            priority=priority,
        )
        follow_in_channel(db_session, incident=incident, now=now)


# -- the incident's own channel -------------------------------------------------------------


def follow_in_channel(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """Show the timeline events the incident's channel has not seen yet, there.

    The timeline is the one source: whatever was done (in the channel, on the
    original thread, in PagerDuty, by the alarm) reaches the channel from it, in
    one message per call: the newest that fit it, after a note on how many earlier
    ones it leaves out (a long incident's first channel). A resolve also posts the
    postmortem draft and plans the archive; a reopen withdraws the archive.
    """
    channel = incident.slack_channel_id
    if channel is None or not incident.has_live_channel:
        return
    seen = incident.channel_event_id or 0
    events = [e for e in incidents.timeline(db_session, incident_id=incident.id) if e.id > seen]
    if events:
        # The timeline is in time order, not id order (a CloudWatch or PagerDuty time
        # ahead of ours, transitions that arrived swapped): what was shown is up to the
        # highest id, or the next call would show the events of higher ids again.
        first, last = min(e.id for e in events), max(e.id for e in events)
        outbox.post_or_update(
            db_session,
            key=f"{incident.channel_key}:events:{first}-{last}",
            channel=channel,
            message=render.channel_events(events, incident_id=incident.id),
            now=now,
            in_turn_with=channel_lines(incident),
        )
        incident.channel_event_id = last
    if not incident.is_open and any(e.kind in RESOLVING for e in events):
        post_postmortem(db_session, incident=incident, now=now)
        _plan_archive(db_session, incident=incident, now=now)
    elif incident.is_open and incident.channel_archive_at is not None:
        incident.channel_archive_at = None
        cancel_after_commit(db_session, job_id(incident, ARCHIVE_CHANNEL_JOB))


def channel_lines(incident: Incident) -> str:
    """What the incident's channel is told in turn (bot/outbox): each batch of events
    after the one before it, however its sends go, and the postmortem draft after the
    events that resolved it. One incident's lines wait for nobody else's."""
    return f"{incident.channel_key}:lines"


def _names(db_session: Session, texts: str) -> dict[str, str]:
    """Names of the Slack users mentioned in `texts`, as opsbot knows them (no Slack call)."""
    names: dict[str, str] = {}
    for user_id in set(re.findall(r"<@([UW][A-Z0-9]+)>", texts)):
        link = people.get(db_session, slack_user_id=user_id)
        if link is not None and link.pagerduty_name:
            names[user_id] = link.pagerduty_name
    return names


def post_postmortem(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """The postmortem draft in the incident's channel (updated in place on a later resolve)."""
    if incident.slack_channel_id is None or not incident.has_live_channel:
        return
    events = incidents.timeline(db_session, incident_id=incident.id)
    changes = [
        row for hook in POSTMORTEM_CHANGES for row in hook(db_session, incident=incident, now=now)
    ]
    texts = [f"{e.actor or ''} {e.text}" for e in events] + [text for _, text in changes]
    lead = (
        f":memo: Postmortem draft for incident #{incident.id}, from its timeline: "
        "copy it into your postmortem document.\n```\n"
    )
    document = render.postmortem_markdown(
        incident,
        events,
        names=_names(db_session, " ".join(texts)),
        changes=changes,
        # What is left out of a long incident is its oldest rows, never the sections to fill.
        max_chars=MAX_MESSAGE_CHARS - len(lead) - len("\n```"),
    )
    text = f"{lead}{document}\n```"
    outbox.post_or_update(
        db_session,
        key=f"{incident.channel_key}:postmortem",
        channel=incident.slack_channel_id,
        message={"text": render.clip(text, MAX_MESSAGE_CHARS), "blocks": None},
        now=now,
        in_turn_with=channel_lines(incident),
    )
    log.info(
        "incident %s: postmortem draft for %s",
        incident.id,
        incident.slack_channel_id,
        extra={"incident": incident.id, "slack_channel": incident.slack_channel_id},
    )


def _plan_archive(db_session: Session, *, incident: Incident, now: datetime) -> None:
    days = incident.channel_archive_after_days
    if days is None or incident.slack_channel_id is None:
        return
    incident.channel_archive_at = (incident.resolved_at or now) + timedelta(days=days)
    _schedule_archive(db_session, incident=incident)


def _schedule_archive(db_session: Session, *, incident: Incident) -> None:
    assert incident.channel_archive_at is not None
    schedule_after_commit(
        db_session,
        ARCHIVE_CHANNEL_JOB,
        at=incident.channel_archive_at,
        job_id=job_id(incident, ARCHIVE_CHANNEL_JOB),
        incident_id=incident.id,
        channel=incident.slack_channel_id,
    )


def thread_transition(
    db_session: Session,
    *,
    incident: Incident,
    item: dict[str, Any],
    now: datetime,
    hold_s: float = 0.0,
) -> None:
    """A threaded reply for a state transition; unsent ones fold into one reply.

    `hold_s`: the reply waits that long for the transitions that follow to fold in.
    """
    outbox.reply_in_thread(
        db_session,
        key=incident.message_key,
        channel=incident.channel,
        fold_key=f"{incident.message_key}:transitions",
        item=item,
        render=render.transitions_reply,
        now=now,
        hold_s=hold_s,
    )
    follow_in_channel(db_session, incident=incident, now=now)


def thread_text(
    db_session: Session, *, incident: Incident, text: str, now: datetime, priority: int = BULK
) -> None:
    """A one-off threaded reply (an error, a note) that never folds with others.

    `priority`: PERSON when it is what someone's click came to.
    """
    outbox.reply_in_thread(
        db_session,
        key=incident.message_key,
        channel=incident.channel,
        fold_key=None,
        item={"text": text},
        render=lambda items: {"text": render.clip(items[-1]["text"], 3000), "blocks": None},
        now=now,
        priority=priority,
    )
    follow_in_channel(db_session, incident=incident, now=now)


def _trigger_body(incident: Incident) -> dict[str, Any]:
    snap = incident.snapshot or {}
    details = {
        k: snap[k]
        for k in ("reason", "metric", "threshold", "description", "alarm_arn", "kind")
        if snap.get(k)
    }
    if incident.opened_by:
        details["declared_by"] = incident.opened_by
    summary = (
        render.summary_plain(incident).split(" ", 1)[-1] if incident.alarm_arn else incident.title
    )
    payload: dict[str, Any] = {
        "summary": render.clip(summary, 1024),
        "source": incident.alarm_arn or incident.route_name,
        "severity": incident.severity,
        "custom_details": details,
    }
    if incident.state_changed_at:
        payload["timestamp"] = incident.state_changed_at.isoformat()
    if incident.account:
        payload["group"] = incident.account
    if snap.get("component"):
        payload["component"] = snap["component"]
    if snap.get("kind"):
        payload["class"] = snap["kind"]
    body: dict[str, Any] = {"payload": payload, "client": "opsbot"}
    if snap.get("console_url"):
        body["links"] = [{"href": snap["console_url"], "text": "CloudWatch alarm"}]
    return body


def page_trigger(
    db_session: Session, *, incident: Incident, now: datetime, new: bool = False
) -> bool:
    """Page on-call for the incident; False when its route has no routing key.

    `new`: the incident was created in this transaction, so its dedup key has
    no event pending.

    Only called when PagerDuty has no open incident for the dedup key, so the
    page opens a new one there: what we knew of the last one is forgotten
    (it is found again by its dedup key), and reminders start over.
    """
    if not incident.routing_key_env:
        return False
    outbox.pagerduty_event(
        db_session,
        routing_key_env=incident.routing_key_env,
        dedup_key=incident.dedup_key,
        action="trigger",
        body=_trigger_body(incident),
        now=now,
        new_key=new,
    )
    incident.paged = True
    if incident.pagerduty_incident_id is not None:
        # Remembered, so that the old incident's late webhooks (a resolve still on
        # its way) are not taken for the new one's: both carry our dedup key.
        superseded = [*incident.pagerduty_superseded_ids, incident.pagerduty_incident_id]
        incident.pagerduty_superseded_ids = superseded[-MAX_SUPERSEDED_IDS:]
    incident.pagerduty_incident_id = None
    incident.pagerduty_number = None
    incident.pagerduty_url = None
    incident.pagerduty_status = None
    incident.escalation_level = None
    incident.assignees = []
    acknowledged = incident.acknowledged_at is not None or incident.acknowledged_by is not None
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    if acknowledged:
        # The messages that list it say who acknowledged it: whatever ends the hold that
        # pages it (a silence, a maintenance window), they must not say so any more.
        _tell_listings(db_session, incident=incident, now=now)
    schedule_reminders(db_session, incident=incident, now=now)
    return True


def page_resolve(db_session: Session, *, incident: Incident, now: datetime, delay_s: float) -> None:
    """Resolve the page, after `delay_s` so that a quick re-ALARM can withdraw it."""
    if not (incident.routing_key_env and incident.paged):
        return
    outbox.pagerduty_event(
        db_session,
        routing_key_env=incident.routing_key_env,
        dedup_key=incident.dedup_key,
        action="resolve",
        body={},
        now=now,
        not_before=now + timedelta(seconds=delay_s),
    )


def withdraw_resolve(db_session: Session, *, incident: Incident, now: datetime) -> bool:
    """Cancel a resolve never tried; False if it went, or was tried (it may have
    reached PagerDuty): the caller pages again, and the page goes out after it."""
    return outbox.cancel_pagerduty_event(
        db_session, dedup_key=incident.dedup_key, action="resolve", now=now
    )


# -- reminders and escalation ------------------------------------------------------------


def schedule_reminders(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """Set the reminder and escalation due times the route asks for, and their jobs."""
    if incident.remind_after_min is not None:
        incident.remind_at = now + timedelta(minutes=incident.remind_after_min)
    if incident.escalate_after_min is not None:
        incident.escalate_at = now + timedelta(minutes=incident.escalate_after_min)
    schedule_reminder_jobs(db_session, incident=incident)


def rearm_escalation(db_session: Session, *, incident: Incident, at: datetime) -> None:
    """Escalate at `at` unless acknowledged or resolved by then (the job checks again)."""
    incident.escalate_at = at
    schedule_after_commit(
        db_session,
        ESCALATE_JOB,
        at=at,
        job_id=job_id(incident, ESCALATE_JOB),
        incident_id=incident.id,
        dedup_key=incident.dedup_key,
    )


def schedule_reminder_jobs(db_session: Session, *, incident: Incident) -> None:
    """(Re-)schedule the reminder and escalation jobs from their stored due times (a
    due time already past runs at once); the jobs check the incident again when they run."""
    for job, due in ((REMIND_JOB, incident.remind_at), (ESCALATE_JOB, incident.escalate_at)):
        if due is not None:
            schedule_after_commit(
                db_session,
                job,
                at=due,
                job_id=job_id(incident, job),
                incident_id=incident.id,
                dedup_key=incident.dedup_key,
            )


def cancel_reminders(db_session: Session, *, incident: Incident) -> None:
    """No reminder and no escalation for this incident any more (acknowledged, resolved)."""
    if incident.remind_at is not None:
        incident.remind_at = None
        cancel_after_commit(db_session, job_id(incident, REMIND_JOB))
    if incident.escalate_at is not None:
        incident.escalate_at = None
        cancel_after_commit(db_session, job_id(incident, ESCALATE_JOB))


def schedule_due_jobs(db_session: Session, *, incident: Incident) -> None:
    """(Re-)schedule every job the incident's stored due times call for (after a restart)."""
    schedule_reminder_jobs(db_session, incident=incident)
    if incident.silenced_until is not None:
        _schedule_silence_end(db_session, incident=incident)
    if incident.channel_archive_at is not None:
        _schedule_archive(db_session, incident=incident)


# -- what people (or PagerDuty) do to an incident -------------------------------------------


# Session.info: incidents whose message a caller updates once, on leaving
# `message_updated_once`, mapped to whether a change inside asked for it.
_UPDATE_ON_LEAVING = "incident_message_update_on_leaving"


@contextlib.contextmanager
def message_updated_once(
    db_session: Session,
    *,
    incident: Incident,
    now: datetime,
    clicked_at: datetime | None = None,
    always: bool = False,
) -> Iterator[None]:
    """The changes made inside update the incident's message once, on leaving.

    Each change alone would render and queue the message (and its pinned copy);
    a click's answer makes one or two changes and then shows their effect. The
    update is made when a change asked for it, when `clicked_at` says a click's
    effect is shown (in the PERSON lane), or `always` (the caller changed what the
    message shows without a change of its own, as PagerDuty's fields).
    """
    owed = db_session.info.setdefault(_UPDATE_ON_LEAVING, {})
    # Read before the changes: after a failed flush the instance is expired, and
    # reading its id then would raise PendingRollbackError in place of the failure.
    incident_id = incident.id
    owed[incident_id] = False
    try:
        yield
        changed = owed[incident_id]
    finally:
        del owed[incident_id]
    if changed or always or clicked_at is not None:
        sync_message(db_session, incident=incident, now=now, clicked_at=clicked_at)


def _changed(
    db_session: Session, *, incident: Incident, now: datetime, listed: bool = False
) -> None:
    """Show the change in the incident's message; `listed`: and in the messages that list it."""
    incident.updated_at = now
    if listed:
        _tell_listings(db_session, incident=incident, now=now)
    owed = db_session.info.get(_UPDATE_ON_LEAVING, {})
    if incident.id in owed:
        owed[incident.id] = True
        return
    sync_message(db_session, incident=incident, now=now)


def acknowledge(
    db_session: Session, *, incident: Incident, by: str, at: datetime, now: datetime, via: str
) -> bool:
    """Mark the incident acknowledged by `by`; False (and no change) if it already was."""
    if incident.acknowledged_at is not None or not incident.is_open:
        return False
    incident.acknowledged_at = at
    incident.acknowledged_by = by
    if incident.pagerduty_status in (None, "triggered"):
        incident.pagerduty_status = "acknowledged" if incident.in_pagerduty else None
    cancel_reminders(db_session, incident=incident)
    incidents.add_event(
        db_session, incident=incident, kind="acknowledged", at=at, now=now, actor=by, text=via
    )
    _changed(db_session, incident=incident, now=now, listed=True)
    return True


def unacknowledge(
    db_session: Session, *, incident: Incident, at: datetime, now: datetime, why: str
) -> bool:
    if incident.acknowledged_at is None or not incident.is_open:
        return False
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    _chase_again(db_session, incident=incident, now=now)
    incidents.add_event(
        db_session, incident=incident, kind="unacknowledged", at=at, now=now, text=why
    )
    _changed(db_session, incident=incident, now=now, listed=True)
    return True


def _chase_again(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """Reminders and escalation from now on, as for a new page, for a page nobody holds
    any more (its acknowledgement undone, or its incident reopened in PagerDuty); not
    during a silence, which stops them (its end brings back those of an alarm still
    in ALARM, `_resume_after_silence`)."""
    if incident.silenced_until is None or incident.silenced_until <= now:
        schedule_reminders(db_session, incident=incident, now=now)


def resolve(
    db_session: Session,
    *,
    incident: Incident,
    by: str,
    at: datetime,
    now: datetime,
    via: str,
    note: str | None = None,
) -> bool:
    """Resolve the incident (by a person or in PagerDuty); False if it already was.

    Its reminder and escalation end either way: an incident its alarm's OK resolved
    keeps them while its page stands (a flap within the reopen window brings them
    back), and a page resolved in PagerDuty no longer stands.
    """
    cancel_reminders(db_session, incident=incident)
    if not incident.is_open:
        return False
    incident.status = RESOLVED
    incident.resolved_at = at
    incident.resolved_by = by
    text = via + (f": {note}" if note else "")
    incidents.add_event(
        db_session, incident=incident, kind="resolved", at=at, now=now, actor=by, text=text
    )
    _changed(db_session, incident=incident, now=now, listed=True)
    return True


def reopen(
    db_session: Session,
    *,
    incident: Incident,
    at: datetime,
    now: datetime,
    why: str,
    pagerduty_status: str | None,
) -> bool:
    """PagerDuty says the incident is open again (e.g. a resolve that it undid).

    `pagerduty_status`: what PagerDuty says it is now. Triggered, nobody holds it:
    the acknowledgement of the episode that ended goes, and it is chased again as a
    new page is (ack mirrors PagerDuty).
    """
    if incident.is_open:
        return False
    incident.status = OPEN
    incident.resolved_at = None
    incident.resolved_by = None
    if pagerduty_status == "triggered":
        incident.acknowledged_at = None
        incident.acknowledged_by = None
        _chase_again(db_session, incident=incident, now=now)
    incidents.add_event(db_session, incident=incident, kind="reopened", at=at, now=now, text=why)
    _changed(db_session, incident=incident, now=now, listed=True)
    return True


def escalated(
    db_session: Session,
    *,
    incident: Incident,
    level: int | None,
    assignees: list[str],
    by: str,
    at: datetime,
    now: datetime,
    via: str,
) -> bool:
    """PagerDuty moved the incident to another escalation level: it is unacknowledged there.

    False when that level is already known (our own escalation, then its webhook), or
    the incident is resolved: only a reopen makes it PagerDuty's to chase again. An
    acknowledged page escalated by hand is held by nobody any more: chased again.
    """
    previous = incident.escalation_level
    if not incident.is_open or (level is not None and level == previous):
        return False
    held = incident.acknowledged_at is not None
    incident.escalation_level = level or incident.escalation_level
    incident.assignees = assignees
    incident.pagerduty_status = "triggered"
    incident.acknowledged_at = None
    incident.acknowledged_by = None
    if held:  # an unacknowledged page is chased already: its timers stay as they are
        _chase_again(db_session, incident=incident, now=now)
    to = f"level {level}" if level else "the next level"
    who = f" ({', '.join(assignees)})" if assignees else ""
    incidents.add_event(
        db_session,
        incident=incident,
        kind="escalated",
        at=at,
        now=now,
        actor=by,
        text=f"to {to}{who}, {via}",
        data={"from_level": previous, "to_level": level},
    )
    _changed(db_session, incident=incident, now=now, listed=True)
    return True


def add_note(
    db_session: Session,
    *,
    incident: Incident,
    text: str,
    by: str,
    at: datetime,
    now: datetime,
    via: str,
    pagerduty_note_id: str | None = None,
) -> bool:
    """A note in the timeline and the thread; False if PagerDuty's note is already there.

    A note written in Slack is added at once and gets PagerDuty's note id when
    PagerDuty accepts it; the webhook announcing that note (before or after)
    then finds it by its id or, while it has none yet, by its text.
    """
    if pagerduty_note_id is not None:
        notes = [
            e for e in incidents.timeline(db_session, incident_id=incident.id) if e.kind == "note"
        ]
        if any(e.data.get("pagerduty_note_id") == pagerduty_note_id for e in notes):
            return False
        waiting = [e for e in notes if e.text == text and not e.data.get("pagerduty_note_id")]
        if waiting:
            waiting[0].data = {**waiting[0].data, "pagerduty_note_id": pagerduty_note_id}
            return False
    incidents.add_event(
        db_session,
        incident=incident,
        kind="note",
        at=at,
        now=now,
        actor=by,
        text=text,
        data={
            "via": via,
            **({"pagerduty_note_id": pagerduty_note_id} if pagerduty_note_id else {}),
        },
    )
    note = escape(text)  # a person's or PagerDuty's words
    thread_text(db_session, incident=incident, text=f":memo: Note from {by}: {note}", now=now)
    return True


def silence(
    db_session: Session, *, incident: Incident, until: datetime | None, by: str, now: datetime
) -> None:
    """Silence the incident's alarm until `until` (None: end the silence now)."""
    if until is None:
        if incident.silenced_until is None:
            return
        cancel_after_commit(db_session, job_id(incident, SILENCE_END_JOB))
        incident.silenced_until = None
        incident.silenced_by = None
        incidents.add_event(
            db_session, incident=incident, kind="unsilenced", at=now, now=now, actor=by
        )
        outcome = _resume_after_silence(db_session, incident=incident, now=now)
        said = f":bell: {by} ended the silence{outcome}."
        thread_text(db_session, incident=incident, text=said, now=now)
    else:
        incident.silenced_until = until
        incident.silenced_by = by
        # Someone is looking: no reminders nor escalation by the bot until it ends.
        cancel_reminders(db_session, incident=incident)
        incidents.add_event(
            db_session,
            incident=incident,
            kind="silenced",
            at=now,
            now=now,
            actor=by,
            text=f"until {utc_text(until, seconds=True)}",
        )
        thread_text(
            db_session,
            incident=incident,
            text=(
                f":no_bell: {by} silenced this alarm until {render.hhmm(until)}: new transitions "
                "are recorded in this thread, but neither posted anew nor paged."
            ),
            now=now,
        )
        _schedule_silence_end(db_session, incident=incident)
    _changed(db_session, incident=incident, now=now)


def _schedule_silence_end(db_session: Session, *, incident: Incident) -> None:
    assert incident.silenced_until is not None
    schedule_after_commit(
        db_session,
        SILENCE_END_JOB,
        at=incident.silenced_until,
        job_id=job_id(incident, SILENCE_END_JOB),
        incident_id=incident.id,
        until=incident.silenced_until.isoformat(),
    )


def end_silence(db_session: Session, *, incident: Incident, now: datetime) -> str:
    """The silence ran out: say so, and page if the alarm is still firing unpaged."""
    incident.silenced_until = None
    incident.silenced_by = None
    incidents.add_event(
        db_session, incident=incident, kind="unsilenced", at=now, now=now, text="silence ended"
    )
    outcome = "silence ended" + _resume_after_silence(db_session, incident=incident, now=now)
    said = f":bell: {outcome[0].upper()}{outcome[1:]}."
    thread_text(db_session, incident=incident, text=said, now=now)
    _changed(db_session, incident=incident, now=now)
    return outcome


def _resume_after_silence(db_session: Session, *, incident: Incident, now: datetime) -> str:
    """What a silence held back, now that it ended (at its time or by hand).

    An alarm still firing unpaged is paged (or its pending resolve withdrawn), unless
    a maintenance window holds it (its end pages it), and a page that stands
    unacknowledged gets its reminders and escalation back. An alarm no longer in
    ALARM gets neither: there is nothing to chase. What was done, as a clause for
    the thread ("; still in ALARM: paged"), or "".
    """
    if not (incident.is_open and incident.alarm_state == "ALARM"):
        return ""
    outcome = ""
    resumed = resume_held_page(db_session, incident=incident, now=now, other_holds=True)
    if resumed is not None:
        outcome = f"; still in ALARM: {resumed.said}"
        if resumed.held:
            return outcome  # nothing paged: nothing to chase
    _remind_if_waiting(db_session, incident=incident, now=now)  # they stopped for the silence
    return outcome


def _remind_if_waiting(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """Reminders and escalation anew for a page that stands unacknowledged with none due."""
    waiting = incident.paged and incident.acknowledged_at is None
    if waiting and incident.remind_at is None and incident.escalate_at is None:
        schedule_reminders(db_session, incident=incident, now=now)


@dataclass(frozen=True)
class Resumed:
    """What the end of a hold did to the page of an alarm still firing.

    `said`: what was done, as a clause for the thread ("paged"). `paged`: its page is
    on again, paged anew or its pending resolve withdrawn. `held`: another hold
    (PAGE_HOLDS) keeps the page back still, and `said` says which.
    """

    said: str
    paged: bool
    held: bool = False


# PagerDuty's status of a resolved incident (`Incident.pagerduty_status`).
PAGERDUTY_RESOLVED = "resolved"
# What paging an alarm again whose PagerDuty incident was resolved did, for the thread.
PAGED_AGAIN_RESOLVED = "paged again, as its PagerDuty incident was resolved"


def page_resolved_in_pagerduty(incident: Incident) -> bool:
    """Whether PagerDuty said the incident of our last page is resolved (in its app, by
    its auto-resolve, or by our resolve): only a new trigger pages anyone then.

    `pagerduty_status` is what PagerDuty's webhooks and answers said about that incident
    (a new page clears it): "triggered" and "acknowledged" are a page that stands, and
    None (no word yet, or no webhooks) is taken as one too.
    """
    return incident.pagerduty_status == PAGERDUTY_RESOLVED


def resume_held_page(
    db_session: Session, *, incident: Incident, now: datetime, other_holds: bool
) -> Resumed | None:
    """Page an alarm still firing whose page a hold (a silence, a maintenance window) kept
    back, now that the hold ended; None when its page is on (nothing was held back) or
    its route pages nobody.

    The resolve of its last page, while still waiting to be sent, is withdrawn: that page
    stands again, and gets reminders and escalation anew if none is due, unless
    PagerDuty resolved its incident meanwhile (`page_resolved_in_pagerduty`). Else it is
    paged anew, unless `other_holds` and a page hold still keeps it back (noted by that
    hold), or someone acknowledged it in Slack since it last reopened (`page_owed`).
    """
    if not incident.routing_key_env:
        return None
    last = outbox.last_pagerduty_event(db_session, dedup_key=incident.dedup_key)
    last_action = last.payload.get("action") if last is not None else None
    resolved_there = page_resolved_in_pagerduty(incident)
    if incident.paged and last_action != "resolve" and not resolved_there:
        return None
    # Resolved in PagerDuty while opsbot's own resolve never went (by someone in its app,
    # or its auto-resolve): the thread says why the alarm is paged again.
    resolved_elsewhere = resolved_there and last_action != "resolve"
    if last_action == "resolve" and withdraw_resolve(db_session, incident=incident, now=now):
        if not resolved_there:
            # The page stands again and is chased again, whoever's end it is: a silence
            # that ran meanwhile stopped its reminders, and nothing since started them.
            _remind_if_waiting(db_session, incident=incident, now=now)
            return Resumed("the pending PagerDuty resolve was withdrawn", paged=True)
        # The resolve would change nothing there, and, left waiting, would hold the new
        # page back until its time.
        resolved_elsewhere = True
        log.info(
            "incident %s: pending resolve withdrawn, PagerDuty incident %s resolved there",
            incident.id,
            incident.pagerduty_incident_id,
            extra={"incident": incident.id, "pagerduty_incident": incident.pagerduty_incident_id},
        )
    held = _held(db_session, incident=incident, now=now) if other_holds else None
    if held is not None:
        return Resumed(held, paged=False, held=True)
    if page_owed(db_session, incident=incident, now=now):
        return Resumed(PAGED_AGAIN_RESOLVED if resolved_elsewhere else "paged", paged=True)
    return Resumed(not_paged(incident), paged=False)


def page_owed(db_session: Session, *, incident: Incident, now: datetime) -> bool:
    """Page a firing alarm that a silence or a maintenance window held back, unless
    someone acknowledged it in Slack meanwhile: then it is theirs, and on-call is not
    woken for it (False). An acknowledgement from before the alarm last reopened was of
    the episode that resolved, not of this one: it holds nothing back."""
    if _acknowledged_since_reopened(db_session, incident):
        log.info(
            "incident %s not paged: acknowledged while its page was held",
            incident.id,
            extra={"incident": incident.id},
        )
        return False
    page_trigger(db_session, incident=incident, now=now)
    return True


def _acknowledged_since_reopened(db_session: Session, incident: Incident) -> bool:
    if incident.acknowledged_at is None:
        return False

    def last(kind: str) -> int:
        query = select(func.max(IncidentEvent.id)).where(
            IncidentEvent.incident_id == incident.id, IncidentEvent.kind == kind
        )
        return int(db_session.scalar(query) or 0)

    # By the timeline's order, not its clocks: two instances' clocks need not agree.
    return last("acknowledged") > last("reopened")


def not_paged(incident: Incident) -> str:
    """Why `page_owed` paged nobody, for the thread."""
    return f"not paged, {keep_mentions(incident.acknowledged_by)} acknowledged it"


def update_from_pagerduty(
    incident: Incident, *, data: IncidentData, assignees: list[str] | None
) -> None:
    """Keep what PagerDuty says about its incident (number, link, status, level, people)."""
    incident.pagerduty_incident_id = data.id
    incident.pagerduty_number = data.number or incident.pagerduty_number
    incident.pagerduty_url = data.html_url or incident.pagerduty_url
    incident.pagerduty_status = data.status or incident.pagerduty_status
    if data.escalation_level is not None:
        incident.escalation_level = data.escalation_level
    incident.priority = render.clip(data.priority, PRIORITY_CHARS) if data.priority else None
    if assignees is not None:
        incident.assignees = assignees
