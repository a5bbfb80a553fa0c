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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.approvals.render import actor_text
from bot.apps.errors import AppError
from bot.apps.registry import get_target_or_raise
from bot.audit import service as audit
from bot.audit.models import AuditRecord
from bot.changes import outside, render
from bot.changes.errors import UndoFailed, UndoRefused, UndoUnknown
from bot.changes.service import (
    FLAG_CHANGE,
    FLAG_UNDO,
    ROLLBACK_UNDO,
    RUNNING,
    RUNNING_FOR_AT_MOST,
    UNDO_EVENT,
    ChangeItem,
    Undo,
    alarm_time,
    changes_view,
    pending,
    running_undos,
)
from bot.db import committed
from bot.deploys.errors import DeployError, DeployFailed
from bot.deploys.models import ROLLBACK, Deployment
from bot.deploys.plans import Request
from bot.deploys.requests import submit as submit_deploy
from bot.flags import flows as flag_flows
from bot.flags.errors import FlagError, FlagFailed
from bot.flags.flows import START as FLAG_START
from bot.flags.requests import Change
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.incidents.flows import DEFAULT_WINDOW_MIN
from bot.incidents.models import OPEN, Incident, IncidentEvent
from bot.scheduler.deferred import cancel_after_commit, schedule_after_commit
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.apps.services import Services
    from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

LOOK_JOB = "changes.look_at_ecs"  # bot/changes/jobs.py
LOST_COUNTED = "changes.lost"  # Session.info: kinds of undos marked lost, counted on commit
LOST_JOB = "changes.undo_lost"  # bot/changes/jobs.py: an undo that never reported
AUDIT_ACTION = "incident.undo"
DONE = "done"
# The undo opened a request that waits for a confirmation or an approval: nothing ran yet.
ASKED = "asked"
REFUSED = "refused"
FAILED = "failed"
# The bot failed after the change was submitted: part of it may have been done.
UNKNOWN = "unknown"
# Still running when no live process can be making it any more (RUNNING_FOR_AT_MOST).
LOST = "lost"
# How each status reads on the timeline and in the thread (the event's text is "label: word").
STATUS_WORDS = {
    RUNNING: "started, not reported yet",
    UNKNOWN: "outcome unknown",
    LOST: "lost: opsbot stopped before it reported",
}
# What the audit line says of each status (incident.undo); the metric says the same.
AUDIT_OUTCOMES = {
    DONE: "ok",
    ASKED: ASKED,
    REFUSED: "refused",
    FAILED: "failed",
    UNKNOWN: "unknown",
}


@dataclass(frozen=True)
class UndoAnswer:
    """What the clicker reads, and what came of the click: `done`, or `asked` when it only
    opened a request that waits for clicks (as audited and counted)."""

    text: str
    outcome: str
    request_id: int | None = None  # asked: the request that waits


def _listed(db_session: Session, *, incident: Incident, key: str, now: datetime) -> ChangeItem:
    snap = incident.snapshot or {}
    app, env = snap.get("app"), snap.get("env")
    if not app or not env:
        raise UndoRefused(f"Incident #{incident.id} lists no changes to undo.")
    view = changes_view(
        db_session,
        app=str(app),
        env=str(env),
        alarm_at=alarm_time(db_session, incident=incident),
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
        running = running_undos(db_session, incident_id=incident.id, now=now).get(key)
        if running is not None:
            raise UndoRefused(_not_reported_text(running, app=str(app), env=str(env), item=item))
        why = item.no_undo or "this change has no one-click undo"
        raise UndoRefused(f"Nothing was done: {why}.")
    return item


def _check_text(undo_kind: object, *, app: str, env: str) -> str:
    """Where to look at what an undo (rollback or flag) may have done."""
    if undo_kind == FLAG_UNDO:
        return f"`/flag list {app} {env}`"
    return f"`/deploy status {app} {env}`"


def _not_reported_text(event: IncidentEvent, *, app: str, env: str, item: ChangeItem) -> str:
    """The refusal of a second click while an undo of the change has not reported.

    Its process may be at work still, or gone (its clicker is told so): after
    RUNNING_FOR_AT_MOST no live process can be making it, and the click is taken.
    """
    again = event.recorded_at + RUNNING_FOR_AT_MOST
    return (
        f"Nothing was done: an undo of it by {actor_text(event.actor or '?')} started "
        f"{render.slack_time(event.recorded_at)} and has not reported yet. If opsbot stopped "
        "meanwhile, part of it may have been done: check "
        f"{_check_text(item.kind, app=app, env=env)} and the incident's thread before asking again "
        f"(this button works again from {render.slack_time(again)} if it still has not "
        "reported)."
    )


def _what(undo: Undo) -> str:
    return "roll back" if undo.kind == ROLLBACK_UNDO else "change feature flags of"


def _claim(
    services: Services, *, incident_id: int, key: str, user_id: str
) -> tuple[Incident, ChangeItem, int]:
    """Check the click and mark the undo running on the incident; raise UndoRefused if not.

    The right is checked between two transactions: it may ask Slack who is in
    a user group, which must not happen while the incident's row is locked.
    """
    _tell_lost(services, incident_id=incident_id)
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
        label = render.undo_label(item.undo)
        event = incidents.add_event(
            db_session,
            incident=locked,
            kind=UNDO_EVENT,
            at=now,
            now=now,
            actor=user_id,
            text=f"{label}: {STATUS_WORDS[RUNNING]}",
            data={"change": key, "status": RUNNING, "undo": label, "kind": item.undo.kind},
        )
        db_session.flush()
        schedule_lost_check(db_session, event=event)
        db_session.commit()
        return locked, item, event.id


def _tell_lost(services: Services, *, incident_id: int) -> None:
    """Tell lost the incident's undos that never reported, before a click is judged.

    Their job may not have run yet (or was lost): the timeline must not show an
    undo running that no process makes, and the click is judged without it.
    Committed on its own, whatever the click comes to.
    """
    now = services.clock.now()
    with services.sessions() as db_session:
        if not _stale_running(db_session, incident_id=incident_id, now=now):
            return
        locked = incidents.lock(db_session, incident_id=incident_id)
        if locked is None:
            return
        for stale in _stale_running(db_session, incident_id=incident_id, now=now):
            _mark_lost(db_session, incident=locked, event=stale, now=now)
        db_session.commit()


def count_lost_after_commit(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count undos marked lost (`opsbot_undo_total`, outcome `lost`) once that commits:
    their click's own count never came, its process gone."""
    committed.on_commit(sessions, LOST_COUNTED, lambda kind: metrics.undo(kind, LOST))


def schedule_lost_check(db_session: Session, *, event: IncidentEvent) -> None:
    """Mark the undo of `event` lost if it has not reported by RUNNING_FOR_AT_MOST.

    Any instance runs the job: the one that claimed it may be the one gone.
    """
    schedule_after_commit(
        db_session,
        LOST_JOB,
        at=event.recorded_at + RUNNING_FOR_AT_MOST,
        job_id=_lost_job_id(event.id),
        event_id=event.id,
    )


def _lost_job_id(event_id: int) -> str:
    return f"undo-lost:{event_id}"


def _stale_running(db_session: Session, *, incident_id: int, now: datetime) -> list[IncidentEvent]:
    """The incident's undo events still running past RUNNING_FOR_AT_MOST."""
    query = select(IncidentEvent).where(
        IncidentEvent.incident_id == incident_id,
        IncidentEvent.kind == UNDO_EVENT,
        IncidentEvent.recorded_at <= now - RUNNING_FOR_AT_MOST,
    )
    # Read anew, not from the session's identity map: after the incident's lock, an
    # undo that reported meanwhile must not be taken for one still running.
    query = query.order_by(IncidentEvent.id).execution_options(populate_existing=True)
    return [
        event for event in db_session.scalars(query) if (event.data or {}).get("status") == RUNNING
    ]


def _mark_lost(
    db_session: Session, *, incident: Incident, event: IncidentEvent, now: datetime
) -> None:
    """Record an undo whose process is gone as lost: timeline, audit and thread.

    Its incident's row is locked by the caller. What it did is not known: the
    thread says where to look. Should its process report after all, `_record`
    writes what really came of it over this.
    """
    data = event.data or {}
    label = str(data.get("undo") or "undo")
    event.data = {**data, "status": LOST}
    committed.note(db_session, LOST_COUNTED, str(data.get("kind") or "unknown"))
    event.text = f"{label}: {STATUS_WORDS[LOST]}"
    snap = incident.snapshot or {}
    app, env = str(snap.get("app") or "?"), str(snap.get("env") or "?")
    check = _check_text(data.get("kind"), app=app, env=env)
    audit.record(
        db_session,
        at=now,
        actor="opsbot",
        action=AUDIT_ACTION,
        target=incident.target,
        outcome=UNKNOWN,
        detail={
            "change": data.get("change"),
            "undo": label,
            "clicked_by": event.actor,
            "lost": True,
            "started_at": event.recorded_at.isoformat(),
        },
    )
    incident_flows.thread_text(
        db_session,
        incident=incident,
        text=(
            f":warning: *{escape(label)}*, clicked by {actor_text(event.actor or '?')} "
            f"{render.slack_time(event.recorded_at)}, never reported: opsbot stopped while "
            f"making it, and part of it may have been done. Check {check} before undoing again."
        ),
        now=now,
    )
    incident_flows.sync_message(db_session, incident=incident, now=now)
    log.warning(
        "undo of %s on incident %s by %s, started at %s, never reported: marked lost",
        data.get("change"),
        incident.id,
        event.actor,
        event.recorded_at.isoformat(),
        extra={"incident": incident.id, "slack_user": event.actor, "change": data.get("change")},
    )


def mark_lost(sessions: sessionmaker[Session], *, event_id: int, now: datetime) -> bool:
    """The lost-undo job: an undo event still running is marked lost (True)."""
    with sessions() as db_session:
        event = db_session.get(IncidentEvent, event_id)
        if event is None or (event.data or {}).get("status") != RUNNING:
            return False
        incident = incidents.lock(db_session, incident_id=event.incident_id)
        db_session.refresh(event)  # as it is now the incident's row is held
        if incident is None or (event.data or {}).get("status") != RUNNING:
            return False
        if event.recorded_at + RUNNING_FOR_AT_MOST > now:  # a clock behind the job's
            return False
        _mark_lost(db_session, incident=incident, event=event, now=now)
        db_session.commit()
        return True


def running_undo_events(db_session: Session, *, since: datetime) -> list[IncidentEvent]:
    """Undo events recorded since `since` still running (their lost-checks are put back)."""
    query = select(IncidentEvent).where(
        IncidentEvent.kind == UNDO_EVENT, IncidentEvent.recorded_at >= since
    )
    return [
        e
        for e in db_session.scalars(query.order_by(IncidentEvent.id))
        if (e.data or {}).get("status") == RUNNING
    ]


def _submit(
    services: Services, incident: Incident, undo: Undo, *, user_id: str, since: datetime
) -> tuple[str, int | None]:
    """Submit the undo as /rollback or /flag would: its answer, and the request it opened
    when its environment waits for a confirmation or an approval (None: it started)."""
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
        accepted = submit_deploy(services, request)
        return accepted.text, accepted.request_id
    assert undo.flag is not None and undo.verb is not None
    change = Change(
        app=app,
        env=env,
        actor=user_id,
        verb=undo.verb,
        flag=undo.flag,
        channel=incident.channel,
        # Pinned to what the change it undoes left: a later change is never undone unseen.
        deployed_version=undo.deployed_version,
        parameter_version=undo.parameter_version,
        undoes=undo.undoes_change,
    )
    text = flag_flows.submit(services, change)
    return text, _flag_request(services, change, since=since)


def _flag_request(services: Services, change: Change, *, since: datetime) -> int | None:
    """The request the clicker's flag change opened since the click, if it only asked.

    /flag answers in words alone; a change it made opens no request.
    """
    with services.sessions() as db_session:
        asked = [
            action
            for action in pending(db_session, kind=FLAG_UNDO, target=change.audit_target)
            if action.requested_by == change.actor
            and action.requested_at >= since
            and (action.payload or {}).get("flag") == change.flag
        ]
    return asked[-1].id if asked else None


def _record(
    services: Services,
    *,
    incident_id: int,
    event_id: int,
    item: ChangeItem,
    user_id: str,
    status: str,
    answer: str,
    request_id: int | None = None,
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
        cancel_after_commit(db_session, _lost_job_id(event_id))  # it reported
        late = (event.data or {}).get("status") == LOST
        if late:  # told as lost already: what really came of it replaces that, openly
            log.warning("undo event %s reported after it was marked lost", event_id)
        event.data = {
            **(event.data or {}),
            "status": status,
            **({"request": request_id} if request_id is not None else {}),
        }
        word = _status_word(status, request_id=request_id)
        event.text = f"{label}: {word}"
        audit.record(
            db_session,
            at=now,
            actor=user_id,
            action=AUDIT_ACTION,
            target=incident.target,
            outcome=AUDIT_OUTCOMES[status],
            detail={
                "change": item.key,
                "undo": label,
                "answer": answer[:500],
                **({"request": request_id} if request_id is not None else {}),
                **({"late": True} if late else {}),
            },
        )
        if status != REFUSED:
            # /rollback's and /flag's own answer says what started, or which request waits.
            said = answer if status in (DONE, ASKED) else f"*{word}*: {answer}"
            incident_flows.thread_text(
                db_session,
                incident=incident,
                text=render.undo_reply(user_id=user_id, undo=item.undo, answer=said),
                now=now,
            )
        incident_flows.sync_message(db_session, incident=incident, now=now)
        db_session.commit()


def _status_word(status: str, *, request_id: int | None) -> str:
    if status == ASKED:
        return f"waiting for approval (request #{request_id})"
    return STATUS_WORDS.get(status, status)


def undo(services: Services, *, incident_id: int, key: str, user_id: str) -> UndoAnswer:
    """Undo the change `key` listed on the incident, as `user_id`; the answer for them.

    On an environment that waits for a confirmation or an approval, the undo only opens
    a request: the answer says `asked`, and so do the timeline, the audit and the metric.

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
    since = services.clock.now()
    try:
        answer, request_id = _submit(services, incident, item.undo, user_id=user_id, since=since)
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
        why = str(exc)
        _record(
            services,
            incident_id=incident_id,
            event_id=event_id,
            item=item,
            user_id=user_id,
            status=REFUSED,
            answer=why,
        )
        raise UndoRefused(why) from exc
    except Exception as exc:
        # After the gates: /rollback or /flag may have started the change before this.
        log.exception(
            "undo of %s on incident %s by %s: the bot failed after submitting it",
            key,
            incident_id,
            user_id,
            extra={"incident": incident_id, "slack_user": user_id, "change": key},
        )
        text = _unknown_text(services, incident, item, user_id=user_id, since=since)
        _record(
            services,
            incident_id=incident_id,
            event_id=event_id,
            item=item,
            user_id=user_id,
            status=UNKNOWN,
            answer=text,
        )
        raise UndoUnknown(text) from exc
    status = DONE if request_id is None else ASKED
    _record(
        services,
        incident_id=incident_id,
        event_id=event_id,
        item=item,
        user_id=user_id,
        status=status,
        answer=answer,
        request_id=request_id,
    )
    log.info(
        "undo of %s on incident %s by %s: %s, %s",
        key,
        incident_id,
        user_id,
        render.undo_label(item.undo),
        _status_word(status, request_id=request_id),
        extra={
            "incident": incident_id,
            "slack_user": user_id,
            "change": key,
            "outcome": status,
            **({"request": request_id} if request_id is not None else {}),
        },
    )
    return UndoAnswer(text=answer, outcome=status, request_id=request_id)


def _unknown_text(
    services: Services, incident: Incident, item: ChangeItem, *, user_id: str, since: datetime
) -> str:
    """What the bot's own records say of an undo it failed after submitting, and where to look.

    A failure reading them is logged: the words without them still hold.
    """
    assert item.undo is not None
    snap = incident.snapshot or {}
    app, env = str(snap.get("app") or "?"), str(snap.get("env") or "?")
    check = _check_text(item.undo.kind, app=app, env=env)
    try:
        with services.sessions() as db_session:
            if item.undo.kind == ROLLBACK_UNDO:
                seen = _rollback_since(db_session, app=app, env=env, user_id=user_id, since=since)
            else:
                seen = _flag_since(
                    db_session, app=app, env=env, flag=item.undo.flag, user_id=user_id, since=since
                )
    except Exception:
        log.exception("cannot read what undo %s on incident %s started", item.key, incident.id)
        seen = "opsbot could not read its own records of it"
    return (
        "Something went wrong on the bot's side (it is logged) after the undo was submitted; "
        f"part of it may have been done: {seen}. Check {check} and the incident's message "
        "before trying again."
    )


def _rollback_since(
    db_session: Session, *, app: str, env: str, user_id: str, since: datetime
) -> str:
    query = select(Deployment).where(
        Deployment.app == app,
        Deployment.env == env,
        Deployment.kind == ROLLBACK,
        Deployment.actor == user_id,
        Deployment.created_at >= since,
    )
    row = db_session.scalars(query.order_by(Deployment.id.desc()).limit(1)).first()
    if row is None:
        return "opsbot recorded no rollback started since the click"
    status = row.status.replace("_", " ")
    return f"opsbot recorded rollback #{row.id}, {escape(status)} now"


def _flag_since(
    db_session: Session, *, app: str, env: str, flag: str | None, user_id: str, since: datetime
) -> str:
    query = select(AuditRecord).where(
        AuditRecord.target == f"flag:{app}/{env}",
        AuditRecord.action.in_((FLAG_CHANGE, FLAG_START)),
        AuditRecord.actor == user_id,
        AuditRecord.at >= since,
    )
    found = [
        entry
        for entry in db_session.scalars(query.order_by(AuditRecord.id.desc()).limit(20))
        if str((entry.detail or {}).get("flag") or "").lower() == (flag or "").lower()
    ]
    name = code(flag or "?")
    if not found:
        return f"opsbot recorded no change of {name} since the click"
    newest = found[0]
    if newest.action == FLAG_START:  # its outcome line never committed: a start settles it
        return f"a change of {name} was about to start deploying, and may have"
    said = {"ok": "was made", "refused": "was refused", "failed": "failed"}
    return f"the change of {name} {said.get(newest.outcome, escape(newest.outcome))}"


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
        alarm_at = alarm_time(db_session, incident=incident)
        view = changes_view(
            db_session,
            app=str(app),
            env=str(env),
            alarm_at=alarm_at,
            window_min=window_min,
            incident_id=None if new else incident.id,
            now=now,
        )
        seen = outside.outside_view(
            db_session,
            app=str(app),
            env=str(env),
            since=alarm_at - timedelta(minutes=window_min),
            until=alarm_at,
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
        alarm_at = alarm_time(db_session, incident=incident)
        seen = outside.outside_view(
            db_session, app=str(app), env=str(env), since=alarm_at, until=alarm_at
        )
        if seen.state == outside.LOOKING:
            waiting.append(incident)
    return waiting
