"""Undoing a change from an incident's message, through the very paths of /rollback and /flag.

`undo` finds the change in the incident's current "changes before this
alarm" (so a button can only undo what the message lists), checks the
clicker's right, and marks the undo as running on the incident's timeline,
all in one transaction holding the incident's row: a second click, even a
concurrent one, finds it running or done and is refused. The change itself
is submitted as `/rollback` and `/flag` submit theirs (bot/deploys/requests.py,
bot/flags/flows.py): rights, locks, freezes, confirmation and two-person
approval on protected environments, the audit. What came of it is threaded
on the incident, kept on its timeline and audited.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from bot.apps.errors import AppError
from bot.apps.registry import get_target_or_raise
from bot.audit import service as audit
from bot.changes import outside, render
from bot.changes.errors import UndoFailed, UndoRefused
from bot.changes.service import (
    ROLLBACK_UNDO,
    RUNNING,
    UNDO_EVENT,
    ChangeItem,
    Undo,
    changes_view,
)
from bot.deploys.errors import DeployError, DeployFailed
from bot.deploys.models import ROLLBACK
from bot.deploys.plans import Request
from bot.deploys.requests import submit as submit_deploy
from bot.flags import flows as flag_flows
from bot.flags.errors import FlagError, FlagFailed
from bot.flags.requests import Change
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.incidents.flows import DEFAULT_WINDOW_MIN
from bot.incidents.models import OPEN, Incident, IncidentEvent
from bot.scheduler.deferred import schedule_after_commit

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)

LOOK_JOB = "changes.look_at_ecs"  # bot/changes/jobs.py
AUDIT_ACTION = "incident.undo"
DONE = "done"
REFUSED = "refused"
FAILED = "failed"
BOT_FAILED = "failed on the bot's side (it is logged)"


def _listed(db_session: Session, *, incident: Incident, key: str, now: datetime) -> ChangeItem:
    snap = incident.snapshot or {}
    app, env = snap.get("app"), snap.get("env")
    if not app or not env:
        raise UndoRefused(f"Incident #{incident.id} lists no changes to undo.")
    view = changes_view(
        db_session,
        app=str(app),
        env=str(env),
        alarm_at=incident.opened_at,
        window_min=float(snap.get("changes_window_min") or DEFAULT_WINDOW_MIN),
        incident_id=incident.id,
        now=now,
    )
    item = next((i for i in view.items if i.key == key), None)
    if item is None:
        raise UndoRefused(
            f"That change is not listed on incident #{incident.id}: nothing was done."
        )
    if item.undo is None:
        why = item.no_undo or "this change has no one-click undo"
        raise UndoRefused(f"Nothing was done: {why}.")
    return item


def _what(undo: Undo) -> str:
    return "roll back" if undo.kind == ROLLBACK_UNDO else "change feature flags of"


def _claim(
    services: Services, *, incident_id: int, key: str, user_id: str
) -> tuple[Incident, ChangeItem, int]:
    """Check the click and mark the undo running on the incident; raise UndoRefused if not.

    The right is checked between two transactions: it may ask Slack who is in
    a user group, which must not happen while the incident's row is locked.
    """
    with services.sessions() as db_session:
        incident = incidents.get(db_session, incident_id=incident_id)
        if incident is None:
            raise UndoRefused(f"There is no incident #{incident_id}.")
        item = _listed(db_session, incident=incident, key=key, now=services.clock.now())
    assert item.undo is not None
    snap = incident.snapshot or {}
    try:
        target = get_target_or_raise(services.config, app=str(snap["app"]), env=str(snap["env"]))
        services.access.require(user_id, target, action=_what(item.undo))
    except AppError as exc:
        raise UndoRefused(str(exc)) from exc
    now = services.clock.now()
    with services.sessions() as db_session:
        locked = incidents.lock(db_session, incident_id=incident_id)
        if locked is None:
            raise UndoRefused(f"There is no incident #{incident_id}.")
        item = _listed(db_session, incident=locked, key=key, now=now)  # a click just before?
        assert item.undo is not None
        event = incidents.add_event(
            db_session,
            incident=locked,
            kind=UNDO_EVENT,
            at=now,
            now=now,
            actor=user_id,
            text=render.undo_label(item.undo),
            data={"change": key, "status": RUNNING},
        )
        db_session.commit()
        return locked, item, event.id


def _submit(services: Services, incident: Incident, undo: Undo, *, user_id: str) -> str:
    snap = incident.snapshot or {}
    app, env = str(snap["app"]), str(snap["env"])
    if undo.kind == ROLLBACK_UNDO:
        request = Request(
            app=app,
            env=env,
            actor=user_id,
            kind=ROLLBACK,
            rollback_of=undo.rollback_of,
            undoes=undo.undoes,
            undoes_task_definition=undo.undoes_task_definition,
            channel=incident.channel,
        )
        return submit_deploy(services, request).text
    assert undo.flag is not None and undo.verb is not None
    change = Change(
        app=app, env=env, actor=user_id, verb=undo.verb, flag=undo.flag, channel=incident.channel
    )
    return flag_flows.submit(services, change)


def _record(
    services: Services,
    *,
    incident_id: int,
    event_id: int,
    item: ChangeItem,
    user_id: str,
    status: str,
    answer: str,
) -> None:
    """What came of the undo: on the timeline, in the audit, and in the thread unless a
    gate refused it (the clicker alone hears that): a failure is the incident's news too.

    `answer` is mrkdwn, built from escaped parts by /rollback and /flag (or ours).
    """
    assert item.undo is not None
    label = render.undo_label(item.undo)
    now = services.clock.now()
    with services.sessions() as db_session:
        incident = incidents.lock(db_session, incident_id=incident_id)
        event = db_session.get(IncidentEvent, event_id)
        if incident is None or event is None:
            return
        event.data = {**(event.data or {}), "status": status}
        event.text = f"{label}: {status}"
        audit.record(
            db_session,
            at=now,
            actor=user_id,
            action=AUDIT_ACTION,
            target=incident.target,
            outcome={DONE: "ok", REFUSED: "refused"}.get(status, "failed"),
            detail={"change": item.key, "undo": label, "answer": answer[:500]},
        )
        if status != REFUSED:
            said = answer if status == DONE else f"*{status}*: {answer}"
            incident_flows.thread_text(
                db_session,
                incident=incident,
                text=render.undo_reply(user_id=user_id, undo=item.undo, answer=said),
                now=now,
            )
        incident_flows.sync_message(db_session, incident=incident, now=now)
        db_session.commit()


def undo(services: Services, *, incident_id: int, key: str, user_id: str) -> str:
    """Undo the change `key` listed on the incident, as `user_id`; the answer for them.

    Raises UndoRefused (nothing changed) when the change is not listed, cannot
    be undone in one click, is being or was already undone, or a gate of
    /rollback or /flag says no; UndoFailed (a subclass) when AWS refused or
    failed the change itself, which the incident's thread is told as well.
    """
    try:
        incident, item, event_id = _claim(
            services, incident_id=incident_id, key=key, user_id=user_id
        )
    except UndoRefused as exc:
        log.info(
            "undo of %s on incident %s refused for %s",
            key,
            incident_id,
            user_id,
            extra={"incident": incident_id, "slack_user": user_id, "change": key},
        )
        _audit_refusal(services, incident_id=incident_id, key=key, user_id=user_id, why=str(exc))
        raise
    assert item.undo is not None
    try:
        answer = _submit(services, incident, item.undo, user_id=user_id)
    except (DeployFailed, FlagFailed) as exc:
        log.warning(
            "undo of %s on incident %s by %s failed: %s",
            key,
            incident_id,
            user_id,
            exc,
            extra={"incident": incident_id, "slack_user": user_id, "change": key},
        )
        _record(
            services,
            incident_id=incident_id,
            event_id=event_id,
            item=item,
            user_id=user_id,
            status=FAILED,
            answer=str(exc),
        )
        raise UndoFailed(str(exc)) from exc
    except (AppError, DeployError, FlagError) as exc:
        _record(
            services,
            incident_id=incident_id,
            event_id=event_id,
            item=item,
            user_id=user_id,
            status=REFUSED,
            answer=str(exc),
        )
        raise UndoRefused(str(exc)) from exc
    except Exception:
        _record(
            services,
            incident_id=incident_id,
            event_id=event_id,
            item=item,
            user_id=user_id,
            status=FAILED,
            answer=BOT_FAILED,
        )
        raise
    _record(
        services,
        incident_id=incident_id,
        event_id=event_id,
        item=item,
        user_id=user_id,
        status=DONE,
        answer=answer,
    )
    log.info(
        "undo of %s on incident %s by %s: %s",
        key,
        incident_id,
        user_id,
        render.undo_label(item.undo),
        extra={"incident": incident_id, "slack_user": user_id, "change": key},
    )
    return answer


def _audit_refusal(
    services: Services, *, incident_id: int, key: str, user_id: str, why: str
) -> None:
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=user_id,
            action=AUDIT_ACTION,
            target=f"incident:{incident_id}",
            outcome="refused",
            detail={"change": key, "reason": why[:500]},
        )
        db_session.commit()


def changes_section(
    db_session: Session, *, incident: Incident, now: datetime, new: bool = False
) -> list[dict[str, Any]]:
    """ "Changes before this alarm", when the alarm belongs to an app environment.

    Read from opsbot's own tables in the caller's transaction (never AWS: an
    open incident without a usable look at ECS says it is looking, and a job
    looks after the commit, see bot/changes/outside.py). A failure to make
    sense of what was read shows one line instead of the section and never
    stops the message, or the page beside it; a database error is the
    transaction's own and goes up. (No savepoint: releasing one fires the
    session's after-commit hooks, which would send the page early.)
    """
    snap = incident.snapshot or {}
    app, env = snap.get("app"), snap.get("env")
    if not app or not env:
        return []
    try:
        window_min = float(snap.get("changes_window_min") or DEFAULT_WINDOW_MIN)
        view = changes_view(
            db_session,
            app=str(app),
            env=str(env),
            alarm_at=incident.opened_at,
            window_min=window_min,
            incident_id=None if new else incident.id,
            now=now,
        )
        seen = outside.outside_view(
            db_session,
            app=str(app),
            env=str(env),
            since=incident.opened_at - timedelta(minutes=window_min),
            until=incident.opened_at,
        )
    except SQLAlchemyError:
        raise
    except Exception:
        log.exception("incident %s: cannot read the changes of %s/%s", incident.id, app, env)
        return [render.unavailable(app=str(app), env=str(env))]
    if seen.state == outside.LOOKING and not incident.is_open:
        return render.changes_blocks(view, incident_id=incident.id)  # nobody will look now
    if seen.state == outside.LOOKING:
        schedule_look(db_session, incident=incident, now=now)
    return render.changes_blocks(view, incident_id=incident.id, outside=seen)


def schedule_look(db_session: Session, *, incident: Incident, now: datetime) -> None:
    """Look at ECS for the incident at `now`, once this transaction commits.

    One job id per incident: every render still waiting for the look, and a
    start putting the job back, replace the stored job.
    """
    job_id = f"{incident.message_key}:ecs_look"
    schedule_after_commit(db_session, LOOK_JOB, at=now, job_id=job_id, incident_id=incident.id)


def waiting_for_a_look(db_session: Session) -> list[Incident]:
    """The open incidents of an app environment whose message still says it is looking at ECS."""
    query = select(Incident).where(Incident.status == OPEN).order_by(Incident.id)
    waiting = []
    for incident in db_session.scalars(query):
        snap = incident.snapshot or {}
        app, env = snap.get("app"), snap.get("env")
        if not app or not env:
            continue
        # The state `changes_section` reads: no look that serves this alarm (outside.serves).
        seen = outside.outside_view(
            db_session,
            app=str(app),
            env=str(env),
            since=incident.opened_at,
            until=incident.opened_at,
        )
        if seen.state == outside.LOOKING:
            waiting.append(incident)
    return waiting
