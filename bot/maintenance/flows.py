"""What a maintenance window does to alarms: hold their pages, and page at its end what still fires.

`hold` is the one call at the alarm's paging decision (bot/alarms/service.py), and
`hold_owed_page` the one where a silence ends and a page is owed (bot/incidents asks it).
When a window ends (its time, or someone ending it early), every open incident
it covered that is still in ALARM, unpaged, not silenced and not under another
window is paged then: a window delays pages, it never loses one.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from bot.db import committed, locks
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.incidents.models import Incident
from bot.maintenance import render
from bot.maintenance import service as windows
from bot.maintenance.models import MaintenanceWindow
from bot.observability.metrics import Metrics
from bot.scheduler.deferred import cancel_after_commit, schedule_after_commit
from bot.slack_dates import slack_date

log = logging.getLogger(__name__)

END_JOB = "maintenance.window_end"
HELD = "maintenance_held"  # db_session.info: pages held in this transaction (for the metric)


def job_id(window: MaintenanceWindow) -> str:
    return f"maintenance:{window.id}:end"


def hold(
    db_session: Session,
    *,
    incident: Incident,
    state: str,
    created: bool,
    reopened: bool,
    silenced: bool,
    now: datetime,
) -> MaintenanceWindow | None:
    """The window that holds this ALARM's page, noted on the timeline and thread; or None.

    Only a transition that would page is held: an ALARM on a route with a
    routing key, of an incident not already paged (or reopened), not silenced.
    A new incident's message carries the window's line (`message_section`); a
    reply in its thread says it for a transition of an existing one.
    """
    if state != "ALARM" or silenced or not incident.routing_key_env:
        return None
    if incident.paged and not reopened:
        return None
    window = windows.active_for(db_session, incident=incident, now=now, hold=True)
    if window is None:
        return None
    _note_held(db_session, incident=incident, window=window, now=now)
    if not created:  # a new incident's message is not posted yet: it says so itself
        incident_flows.thread_text(
            db_session, incident=incident, text=render.held_line(window), now=now
        )
    return window


def hold_owed_page(db_session: Session, *, incident: Incident, now: datetime) -> str | None:
    """Hold a page owed now that a silence ended, at its time or by hand (bot/incidents
    PAGE_HOLDS), while a window covers the alarm: noted on the timeline and counted; why,
    as a clause for the reply that says the silence ended. None when no window covers it."""
    window = windows.active_for(db_session, incident=incident, now=now, hold=True)
    if window is None:
        return None
    _note_held(db_session, incident=incident, window=window, now=now)
    return (
        f"held by maintenance window #{window.id} until {slack_date(window.ends_at)}, "
        "paged then if it still fires"
    )


def _note_held(
    db_session: Session, *, incident: Incident, window: MaintenanceWindow, now: datetime
) -> None:
    incidents.add_event(
        db_session,
        incident=incident,
        kind="maintenance",
        at=now,
        now=now,
        text=f"in maintenance window #{window.id}: not paged",
        data={"window_id": window.id},
    )
    committed.note(db_session, HELD, 1)
    log.info(
        "incident %s held by maintenance window %s",
        incident.id,
        window.id,
        extra={"incident": incident.id, "window": window.id},
    )


def message_section(
    db_session: Session, *, incident: Incident, now: datetime, new: bool
) -> list[dict[str, Any]]:
    """The incident message's line while a window holds its page (bot/incidents EXTRA_SECTIONS)."""
    if incident.paged or not incident.is_open or not incident.routing_key_env:
        return []
    if incident.alarm_state != "ALARM":
        return []  # nothing to page: nothing held
    window = windows.active_for(db_session, incident=incident, now=now)
    if window is None:
        return []
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": render.held_line(window)}]}]


def schedule_end(db_session: Session, *, window: MaintenanceWindow) -> None:
    schedule_after_commit(
        db_session, END_JOB, at=window.ends_at, job_id=job_id(window), window_id=window.id
    )


def close(db_session: Session, *, window: MaintenanceWindow, by: str | None, now: datetime) -> int:
    """Mark the window over and page what it held that still fires; how many were paged.

    The window is locked by `windows.lock`, which waits for any other window's end to
    commit first: two windows over one alarm, ended at once, would each see the other
    in force and pass over the alarm, and nobody would page it.
    """
    # Held already since `windows.lock` (taken again at no cost): the windows in force
    # below are read once any other end committed.
    locks.serialize(db_session, windows.CLOSE)
    window.ended_at = now
    window.ended_by = by
    window.updated_at = now
    if by is not None:
        cancel_after_commit(db_session, job_id(window))
    db_session.flush()
    in_force = windows.active(db_session, now=now)
    paged = 0
    for candidate in windows.firing_unpaged_candidates(db_session):
        if not windows.covers(window, candidate):
            continue
        if any(windows.covers(other, candidate) for other in in_force):
            continue
        if not _still_owed(candidate, now=now):
            # Left unlocked: a silence's end locks its incident, then reads this window,
            # and must not meet this transaction the other way round.
            continue
        # The candidates were read unlocked: an OK, an acknowledgement or a silence may
        # have committed since. Locked (in id order, as read) and read afresh, the
        # incident is paged only if it still fires unheld.
        incident = incidents.lock(db_session, incident_id=candidate.id)
        if incident is None or not _still_owed(incident, now=now):
            continue
        if _page_if_owed(db_session, incident=incident, window=window, now=now):
            paged += 1
    return paged


def _still_owed(incident: Incident, *, now: datetime) -> bool:
    """Whether the locked incident still fires unsilenced; `resume_held_page` then checks
    its page and any acknowledgement."""
    if not incident.is_open or incident.alarm_state != "ALARM" or not incident.routing_key_env:
        return False
    return incident.silenced_until is None or incident.silenced_until <= now


def _page_if_owed(
    db_session: Session, *, incident: Incident, window: MaintenanceWindow, now: datetime
) -> bool:
    # `close` passed over the alarms a silence or another window still holds: their
    # hold's end resumes them, so no other hold is asked here.
    resumed = incident_flows.resume_held_page(
        db_session, incident=incident, now=now, other_holds=False
    )
    if resumed is None:
        return False  # its page is on (it was paged before the window began)
    outcome = resumed.said
    incidents.add_event(
        db_session,
        incident=incident,
        kind="maintenance_end",
        at=now,
        now=now,
        text=f"maintenance window #{window.id} over, still in ALARM: {outcome}",
        data={"window_id": window.id},
    )
    incident_flows.thread_text(
        db_session,
        incident=incident,
        text=(
            f":bell: Maintenance window #{window.id} is over and this alarm still fires: {outcome}."
        ),
        now=now,
    )
    incident.updated_at = now
    incident_flows.sync_message(db_session, incident=incident, now=now)
    log.info(
        "incident %s still fires at the end of maintenance window %s: %s",
        incident.id,
        window.id,
        outcome,
        extra={"incident": incident.id, "window": window.id},
    )
    return resumed.paged


def count_held_after_commit(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count the pages windows held once their transaction commits (never a rolled-back one)."""
    committed.on_commit(sessions, HELD, lambda _page: metrics.maintenance_held.inc())
