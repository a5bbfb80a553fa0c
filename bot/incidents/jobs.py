"""Scheduled work on incidents: reminders, escalation, the end of a silence.

Each job checks the incident's own due time before acting and clears it in
the same transaction as the reply it sends (an escalation: and the call it
queues), so a job that runs twice (after a restart re-scheduled it, or on a
test clock) acts once, and one that fails before its commit leaves the due
time for the next start to schedule again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from bot.clock import Clock
from bot.db.statements import update_rows
from bot.incidents import flows, render
from bot.incidents import service as incidents
from bot.incidents.actions import ESCALATE, IncidentActions, Requester
from bot.incidents.models import OPEN, Incident
from bot.pagerduty.errors import PagerDutyError
from bot.pagerduty.rest import PagerDutyRest
from bot.pagerduty.webhooks import parse_incident
from bot.people.directory import PeopleDirectory
from bot.scheduler.registry import JobFunction
from bot.slack_text import keep_mentions

log = logging.getLogger(__name__)

# APScheduler may call a moment early by our clock's reckoning (float timestamps).
GRACE = timedelta(seconds=1)
# Slack's own trouble: the archive job raises on these so the scheduler tries it again;
# any other refusal (not_in_channel, missing_scope, channel_not_found) stays as it is.
ARCHIVE_LATER = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)


@dataclass(frozen=True)
class IncidentJobDeps:
    """What the incident jobs work with, built by the composition root."""

    sessions: sessionmaker[Session]
    clock: Clock
    pagerduty: PagerDutyRest | None  # REST API v2; None without PAGERDUTY_API_TOKEN
    people: PeopleDirectory
    actions: IncidentActions
    instance_id: str  # this instance's (its outbox's), noted on the events jobs add
    slack: WebClient | None = None  # archives incident channels; None without a token
    count_channel: Callable[[str], None] = lambda _outcome: None  # opsbot_incident_channels


def _due_where(
    column: InstrumentedAttribute[datetime | None],
    *,
    incident_id: int,
    dedup_key: str,
    now: datetime,
) -> tuple[ColumnElement[bool], ...]:
    """A job on this incident has something to do: open, unacknowledged, its time come."""
    return (
        Incident.id == incident_id,
        Incident.dedup_key == dedup_key,
        Incident.status == OPEN,
        Incident.acknowledged_at.is_(None),
        column.is_not(None),
        column <= now + GRACE,
    )


def _due(
    db_session: Session,
    column: InstrumentedAttribute[datetime | None],
    *,
    incident_id: int,
    dedup_key: str,
    now: datetime,
) -> Incident | None:
    """The incident, if a job on it has something to do (its claim checks again)."""
    where = _due_where(column, incident_id=incident_id, dedup_key=dedup_key, now=now)
    return db_session.scalars(select(Incident).where(*where)).first()


def _claim(
    db_session: Session,
    column: InstrumentedAttribute[datetime | None],
    *,
    incident_id: int,
    dedup_key: str,
    now: datetime,
) -> bool:
    """Clear a due time that is due; True if this did.

    Not committed: the caller commits it with what the job does.
    """
    where = _due_where(column, incident_id=incident_id, dedup_key=dedup_key, now=now)
    claimed = update_rows(db_session, update(Incident).where(*where).values({column.key: None}))
    return claimed == 1


def _waited(after_min: float | None, incident: Incident, now: datetime) -> str:
    """How long the page has gone unacknowledged: the route's setting (a page may be a re-page)."""
    if after_min is not None:
        return render.duration(after_min * 60)
    return render.duration((now - incident.opened_at).total_seconds())


def _on_call(deps: IncidentJobDeps, incident: Incident) -> list[str]:
    """Who to mention: PagerDuty's assignees now, else the last we heard, else the route's."""
    if deps.pagerduty is not None and incident.in_pagerduty:
        try:
            found = (
                deps.pagerduty.get_incident(incident.pagerduty_incident_id)
                if incident.pagerduty_incident_id
                else deps.pagerduty.find_incident_by_key(
                    incident.dedup_key, service_id=incident.pagerduty_service_id
                )
            )
            if found is not None:
                shown = deps.people.display_all(parse_incident(found).assignees)
                if shown:
                    return shown
        except PagerDutyError as exc:
            log.warning("incident %s: cannot read its assignees (%r)", incident.id, str(exc))
    if incident.assignees:
        return [keep_mentions(a) for a in incident.assignees]
    return [incident.mention] if incident.mention else []


def remind(deps: IncidentJobDeps, *, incident_id: int, dedup_key: str) -> None:
    with deps.sessions() as db_session:
        incident = _due(
            db_session,
            Incident.remind_at,
            incident_id=incident_id,
            dedup_key=dedup_key,
            now=deps.clock.now(),
        )
    if incident is None:
        return
    on_call = _on_call(deps, incident)
    now = deps.clock.now()
    with deps.sessions() as db_session:
        claimed = _claim(
            db_session, Incident.remind_at, incident_id=incident_id, dedup_key=dedup_key, now=now
        )
        if not claimed:
            return
        incident = incidents.lock(db_session, incident_id=incident_id)
        assert incident is not None
        minutes = _waited(incident.remind_after_min, incident, now)
        who = ", ".join(on_call) or "On-call"
        text = f":alarm_clock: Still not acknowledged after {minutes}. {who}: please acknowledge."
        if incident.escalate_at is not None:
            text += f" It will be escalated in PagerDuty at {render.hhmm(incident.escalate_at)}."
        flows.thread_text(db_session, incident=incident, text=text, now=now)
        incidents.add_event(
            db_session,
            incident=incident,
            kind="reminder",
            at=now,
            now=now,
            actor="opsbot",
            text=f"reminded {who}",
            data={"instance": deps.instance_id},
        )
        db_session.commit()


def escalate(deps: IncidentJobDeps, *, incident_id: int, dedup_key: str) -> None:
    now = deps.clock.now()
    with deps.sessions() as db_session:
        due = _due(
            db_session, Incident.escalate_at, incident_id=incident_id, dedup_key=dedup_key, now=now
        )
    if due is None:
        return

    def claim(db_session: Session, incident: Incident) -> bool:
        """With the escalation's call: the due time cleared, the thread and timeline told."""
        claimed = _claim(
            db_session, Incident.escalate_at, incident_id=incident_id, dedup_key=dedup_key, now=now
        )
        if not claimed:
            return False
        minutes = _waited(incident.escalate_after_min, incident, now)
        flows.thread_text(
            db_session,
            incident=incident,
            text=(
                f":arrow_double_up: Still not acknowledged after {minutes}: "
                "escalating in PagerDuty."
            ),
            now=now,
        )
        incidents.add_event(
            db_session,
            incident=incident,
            kind="escalating",
            at=now,
            now=now,
            actor="opsbot",
            text=f"not acknowledged after {minutes}",
            data={"instance": deps.instance_id},
        )
        return True

    asked = deps.actions.request(
        incident_id=incident_id, action=ESCALATE, requester=Requester(None, via="job"), claim=claim
    )
    if asked:
        return
    # Refused (acknowledged meanwhile, a call already on its way, PagerDuty out of
    # reach): the refusal was told once, so the due time goes too.
    with deps.sessions() as db_session:
        _claim(
            db_session, Incident.escalate_at, incident_id=incident_id, dedup_key=dedup_key, now=now
        )
        db_session.commit()


def silence_end(deps: IncidentJobDeps, *, incident_id: int, until: str) -> None:
    now = deps.clock.now()
    planned = datetime.fromisoformat(until)
    with deps.sessions() as db_session:
        incident = incidents.lock(db_session, incident_id=incident_id)
        if incident is None or incident.silenced_until is None:
            return
        if abs(incident.silenced_until - planned) > GRACE or incident.silenced_until > now + GRACE:
            return  # silenced again since: that silence has its own job
        outcome = flows.end_silence(db_session, incident=incident, now=now)
        db_session.commit()
    log.info("incident %s: %s", incident_id, outcome)


def _answers_later(exc: SlackApiError) -> bool:
    """Slack could not archive now (a rate limit, its own trouble) but may on the next try."""
    status = exc.response.status_code
    return status == 429 or status >= 500 or exc.response.get("error") in ARCHIVE_LATER


def _archive_retried(incident_id: int, channel: str, error: str) -> None:
    # The scheduler retries the job that raises, so the channel is archived once Slack answers.
    log.warning(
        "incident %s: cannot archive %s yet (%s); tried again later",
        incident_id,
        channel,
        error,
        extra={"incident": incident_id, "slack_channel": channel},
    )


def _archive_raced(incident_id: int, channel: str, why: str, deps: IncidentJobDeps) -> None:
    deps.count_channel("archive_raced")
    log.warning(
        "incident %s: archived %s as %s",
        incident_id,
        channel,
        why,
        extra={"incident": incident_id, "slack_channel": channel},
    )


def archive_channel(deps: IncidentJobDeps, *, incident_id: int, channel: str) -> None:
    """Archive a resolved incident's channel when its time came (a reopen withdrew it)."""
    now = deps.clock.now()
    with deps.sessions() as db_session:
        incident = incidents.get(db_session, incident_id=incident_id)
        if incident is None or incident.slack_channel_id != channel:
            return
        due = incident.channel_archive_at
        if incident.is_open or due is None or due > now + GRACE:
            return
    if deps.slack is None:
        log.warning("incident %s: no Slack token to archive %s", incident_id, channel)
        return
    error = None
    try:
        deps.slack.conversations_archive(channel=channel)
    except SlackApiError as exc:
        error = str(exc.response.get("error") or f"http_{exc.response.status_code}")
        if _answers_later(exc):
            _archive_retried(incident_id, channel, error)
            raise
    except OSError as exc:  # a timeout, a refused or broken connection
        _archive_retried(incident_id, channel, type(exc).__name__)
        raise
    except SlackClientError as exc:
        error = type(exc).__name__
    if error not in (None, "already_archived"):
        deps.count_channel("archive_failed")
        log.warning(
            "incident %s: cannot archive %s (%s)",
            incident_id,
            channel,
            error,
            extra={"incident": incident_id, "slack_channel": channel},
        )
        return
    with deps.sessions() as db_session:
        # Checked again under the lock: a reopen may have come while Slack archived it.
        locked = incidents.lock(db_session, incident_id=incident_id)
        if locked is None or locked.slack_channel_id != channel:
            _archive_raced(incident_id, channel, "its channel changed meanwhile", deps)
            return
        raced = locked.is_open
        if not raced:
            locked.channel_archive_at = None
        # Archived in Slack either way, and a bot token cannot unarchive (Slack's
        # conversations.unarchive takes a user token): an open incident shows Start a
        # channel again, and a start makes a new one.
        locked.channel_archived_at = now
        incidents.add_event(
            db_session,
            incident=locked,
            kind="channel_archived",
            at=now,
            now=now,
            actor="opsbot",
            text=f"#{locked.slack_channel_name or channel}",
            data={"instance": deps.instance_id},
        )
        if raced:
            flows.sync_message(db_session, incident=locked, now=now)
        db_session.commit()
    if raced:
        _archive_raced(incident_id, channel, "it reopened meanwhile", deps)
        return
    deps.count_channel("archived")
    log.info(
        "incident %s: channel %s archived",
        incident_id,
        channel,
        extra={"incident": incident_id, "slack_channel": channel},
    )


def reschedule(sessions: sessionmaker[Session]) -> None:
    """At start: make sure every stored due time has its job (a crash may have lost one)."""
    with sessions() as db_session:
        query = select(Incident).where(
            or_(
                Incident.remind_at.is_not(None),
                Incident.escalate_at.is_not(None),
                Incident.silenced_until.is_not(None),
                Incident.channel_archive_at.is_not(None),
            )
        )
        for incident in db_session.scalars(query):
            flows.schedule_due_jobs(db_session, incident=incident)
        db_session.commit()


def jobs(deps: IncidentJobDeps) -> dict[str, JobFunction]:
    """The incident jobs by name, bound to `deps`."""
    return {
        flows.REMIND_JOB: partial(remind, deps),
        flows.ESCALATE_JOB: partial(escalate, deps),
        flows.SILENCE_END_JOB: partial(silence_end, deps),
        flows.ARCHIVE_CHANNEL_JOB: partial(archive_channel, deps),
    }
