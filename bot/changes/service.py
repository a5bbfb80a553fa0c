"""The changes opsbot made to an app environment in a window: read from its own tables only.

Deploys and rollbacks come from `deployments`, flag changes from the audit
trail (`flag.change`, and `flag.deployment` for how an AppConfig rollout
ended), requests still waiting for clicks from `pending_actions`, deploys
made outside opsbot from the latest look at ECS (`ecs_looks`). Nothing
here calls AWS: the view is built in the alarm intake's transaction, on the
paging path, and again whenever the incident's message is rendered. A
rollback it offers carries the revision it undoes, and is refused when it
runs if ECS runs another by then (bot/deploys/checks.py).

For each change the view says whether it can still be undone in one click,
or why not (already undone, replaced by a newer change, waiting for approval,
being undone right now).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.approvals.models import EXECUTING, PENDING, PendingAction
from bot.approvals.render import actor_text
from bot.audit.models import AuditRecord
from bot.changes.outside import rolled_out_after
from bot.deploys.models import COMPLETED, DEPLOY, FAILED, ROLLBACK, SUPERSEDED, Deployment
from bot.deploys.policy import digest_of, short_digest, short_task_definition, tag_of
from bot.flags.document import value_text
from bot.incidents.models import Incident, IncidentEvent
from bot.slack_text import code

FLAG_CHANGE = "flag.change"  # bot/flags/flows.py audits every change under this action
FLAG_DEPLOYMENT = "flag.deployment"  # ... and how each AppConfig rollout ended
UNDO_EVENT = "undo"  # an incident's timeline: an undo clicked on its message
# An incident's timeline: an alarm transition, `at` its StateChangeTime (bot/alarms/service.py).
ALARM_STATE_EVENT = "alarm_state"
RUNNING = "running"  # an undo event whose change is being made right now
# An undo still "running" after this was lost with its process: its button comes back.
RUNNING_FOR_AT_MOST = timedelta(minutes=10)
MAX_ITEMS = 10
DEPLOYING = "deploying"  # a flag change whose AppConfig rollout has not ended
FAILURES_READ = 500  # failed flag changes read to count those that wrote (see _flag_total)
LATER_READ = 500  # flag lines read after the oldest listed flag change (see _flag_items)
# The outcomes of the `flag.change` and `flag.deployment` lines that tell what became of a
# listed change: done or failed changes (a failure may have written), and how rollouts ended.
LATER_OUTCOMES = ("ok", "failed", "rolled_back")

ROLLBACK_UNDO = "rollback"
FLAG_UNDO = "flag"


@dataclass(frozen=True)
class Undo:
    """What one click would run: `/rollback` to a deployment, or `/flag on|off`."""

    kind: str  # rollback | flag
    target_version: str | None = None  # rollback: the version it returns to
    rollback_of: int | None = None  # rollback: the deployment restored
    undoes: int | None = None  # rollback: the deploy it undoes
    # rollback: the revision that deploy put in place; the rollback is refused
    # when ECS runs another one by the time it runs.
    undoes_task_definition: str | None = None
    flag: str | None = None
    verb: str | None = None  # flag: on | off
    # flag: the version the change it undoes left (SSM's parameter version, or the AppConfig
    # version it deployed); the undo is refused when the flag is at another one by then.
    parameter_version: int | None = None
    deployed_version: int | None = None
    undoes_change: int | None = None  # flag: the audit line of the change it undoes


@dataclass(frozen=True)
class ChangeItem:
    key: str  # deploy:<deployment id> | flag:<audit record id>
    kind: str  # deploy | rollback | flag
    at: datetime
    actor: str
    # subject, before and after are raw text from outside: escaped where they are shown.
    subject: str  # a version, or a flag's name
    before: str | None  # the version or flag state it replaced
    after: str | None  # a flag's state after the change
    status: str
    undo: Undo | None = None
    # Why there is no button, as mrkdwn made of mentions, ids and words (no outside text).
    no_undo: str | None = None
    # What became of a later change of it that did not stay, when the button is offered
    # (mrkdwn of the same making).
    note: str | None = None


@dataclass(frozen=True)
class ChangesView:
    app: str
    env: str
    window_min: float
    items: list[ChangeItem] = field(default_factory=list)  # newest first
    more: int = 0  # changes in the window not listed

    @property
    def label(self) -> str:
        return f"{self.app}/{self.env}"


def _version(deployment: Deployment) -> str:
    return deployment.tag or short_digest(deployment.digest)


def _previous_version(deployment: Deployment) -> str | None:
    """The version a deploy replaced: its tag, or its image's short digest (None: unknown)."""
    image = deployment.previous_image
    if deployment.previous_tag or not image:
        return deployment.previous_tag or None
    return tag_of(image) or short_digest(digest_of(image))


def _mention(actor: str) -> str:
    return actor_text(actor)


def pending(db_session: Session, *, kind: str, target: str) -> list[PendingAction]:
    """The requests of `kind` on `target` still waiting for clicks (or running), oldest first."""
    query = select(PendingAction).where(
        PendingAction.kind == kind,
        PendingAction.target == target,
        PendingAction.status.in_((PENDING, EXECUTING)),
    )
    return list(db_session.scalars(query.order_by(PendingAction.id)))


def alarm_time(db_session: Session, *, incident: Incident) -> datetime:
    """When the incident's alarm fired: the end of its window of "changes before this alarm".

    The StateChangeTime of the transition that opened it (its first timeline
    event), no later than the incident's opening: a notification can reach
    opsbot minutes after the alarm fired (SNS retries, a queue's backlog, a
    dead-letter redrive), and what was done in between, the fix often, is not
    a change before the alarm. An incident opened with no transition on its
    timeline ends its window where it opened.
    """
    query = (
        select(IncidentEvent.at)
        .where(IncidentEvent.incident_id == incident.id, IncidentEvent.kind == ALARM_STATE_EVENT)
        .order_by(IncidentEvent.id)
        .limit(1)
    )
    fired = db_session.scalars(query).first()
    return incident.opened_at if fired is None else min(fired, incident.opened_at)


def running_undos(
    db_session: Session, *, incident_id: int, now: datetime
) -> dict[str, IncidentEvent]:
    """Changes whose undo, clicked on this incident, is being made now: key -> its event.

    One still running after RUNNING_FOR_AT_MOST was lost with its process (it is
    marked lost then, bot/changes/flows.py): its button comes back.
    """
    query = select(IncidentEvent).where(
        IncidentEvent.incident_id == incident_id,
        IncidentEvent.kind == UNDO_EVENT,
        IncidentEvent.recorded_at > now - RUNNING_FOR_AT_MOST,
    )
    running: dict[str, IncidentEvent] = {}
    for event in db_session.scalars(query.order_by(IncidentEvent.id)):
        key = str((event.data or {}).get("change"))
        if (event.data or {}).get("status") == RUNNING:
            running[key] = event
        else:
            running.pop(key, None)
    return running


def _deploy_items(
    db_session: Session, *, app: str, env: str, since: datetime, until: datetime
) -> tuple[list[ChangeItem], int]:
    """The newest deploys and rollbacks of the window (MAX_ITEMS at most), and how many it holds."""
    where = (
        Deployment.app == app,
        Deployment.env == env,
        Deployment.kind.in_((DEPLOY, ROLLBACK)),
        Deployment.created_at >= since,
        Deployment.created_at <= until,
    )
    query = select(Deployment).where(*where)
    rows = list(db_session.scalars(query.order_by(Deployment.id.desc()).limit(MAX_ITEMS)))
    total = len(rows)
    if total == MAX_ITEMS:
        total = int(db_session.scalar(select(func.count(Deployment.id)).where(*where)) or 0)
    items: list[ChangeItem] = []
    # A failed deploy left nothing of it running (ECS put the revision before it back):
    # the button goes to the newest deploy that did not fail, the one ECS runs.
    latest_deploy = next((d for d in rows if d.kind == DEPLOY and d.status != FAILED), None)
    for row in rows:
        undo, no_undo = None, None
        if row is latest_deploy:
            undo, no_undo = _rollback_of(db_session, row)
        items.append(
            ChangeItem(
                key=f"deploy:{row.id}",
                kind=row.kind,
                at=row.created_at,
                actor=row.actor,
                subject=_version(row),
                before=_previous_version(row),
                after=None,
                status=row.status.replace("_", " "),
                undo=undo,
                no_undo=no_undo,
            )
        )
    return items, total


def _rollback_of(db_session: Session, deployment: Deployment) -> tuple[Undo | None, str | None]:
    """The rollback button of the newest deploy, or why it has none.

    A deploy still rolling out (or stuck) has one: the rollback takes it over
    (bot/deploys/checks.py), and it is superseded then, rolled back.
    """
    if deployment.status == FAILED:
        return None, None  # nothing of it runs: the status says so
    later_query = select(Deployment).where(
        Deployment.app == deployment.app,
        Deployment.env == deployment.env,
        Deployment.kind.in_((DEPLOY, ROLLBACK)),
        Deployment.id > deployment.id,
        Deployment.status != FAILED,
    )
    later = db_session.scalars(later_query.order_by(Deployment.id.desc()).limit(1)).first()
    if later is not None and later.kind == ROLLBACK and _undid(later, deployment):
        status = later.status.replace("_", " ")
        return None, f"already rolled back by {_mention(later.actor)} (#{later.id}, {status})"
    if deployment.status == SUPERSEDED:
        return None, None  # nothing of it runs: the status says so
    if later is not None:
        return None, f"replaced by #{later.id}"
    outside = rolled_out_after(
        db_session, app=deployment.app, env=deployment.env, after=deployment.created_at
    )
    # ECS's circuit breaker putting this deploy's own revision back after a later deploy
    # failed is no replacement: the rollback is still refused when it runs if ECS runs
    # another revision by then (bot/deploys/checks.py).
    own = short_task_definition(deployment.task_definition)
    if outside is not None and outside.task_definition != own:
        # The revision name is AWS's text: escaped, as no_undo is shown as mrkdwn.
        return None, f"replaced by {code(outside.task_definition)}, deployed outside opsbot"
    waiting = pending(db_session, kind=ROLLBACK, target=f"deploy:{deployment.label}")
    if waiting:
        return None, f"a rollback of it waits for approval (request #{waiting[-1].id})"
    if not deployment.previous_task_definition or not deployment.task_definition:
        return None, "nothing recorded to roll back to"
    # A deploy or rollback put that revision in place; a flag roll only restarted it.
    target_query = select(Deployment).where(
        Deployment.app == deployment.app,
        Deployment.env == deployment.env,
        Deployment.kind.in_((DEPLOY, ROLLBACK)),
        Deployment.status == COMPLETED,
        Deployment.task_definition == deployment.previous_task_definition,
        Deployment.id < deployment.id,
    )
    target = db_session.scalars(target_query.order_by(Deployment.id.desc()).limit(1)).first()
    if target is None:
        return None, (
            "the version before it was not deployed by opsbot (roll back by hand: "
            f"`/rollback {deployment.app} {deployment.env} <deployment-id>`)"
        )
    undo = Undo(
        kind=ROLLBACK_UNDO,
        target_version=_version(target),
        rollback_of=target.id,
        undoes=deployment.id,
        undoes_task_definition=deployment.task_definition,
    )
    return undo, None


def _undid(rollback: Deployment, deployment: Deployment) -> bool:
    """Whether a rollback after `deployment` undid it.

    One that superseded it while it rolled out went back from its revision; a
    superseded deploy rolled back from another revision was replaced by something else.
    """
    if deployment.status != SUPERSEDED:
        return True
    return rollback.previous_task_definition == deployment.task_definition


def enabled_of(state: dict[str, Any]) -> bool | None:
    """A flag's on/off in an audited before/after (AppConfig's `enabled`, SSM's value)."""
    if "enabled" in state:
        return bool(state["enabled"])
    if state.get("value") in ("true", "false"):
        return bool(state["value"] == "true")
    return None


def _state(value: Any) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _state_text(state: dict[str, Any]) -> str:
    """`on`, `off · rollout_percent=25`, or an SSM value: raw, as bot/flags/render.state_text
    words it (escaped once, where it is shown)."""
    parts = []
    if "enabled" in state:
        parts.append("on" if state["enabled"] else "off")
    if "value" in state:
        parts.append(str(state["value"]))
    parts.extend(f"{k}={value_text(v)}" for k, v in state.items() if k not in ("enabled", "value"))
    return " · ".join(parts)


def _flag_status(
    db_session: Session, entry: AuditRecord, ended: dict[tuple[str, int], AuditRecord]
) -> str:
    detail = entry.detail or {}
    number = detail.get("deployment")
    if "parameter_version" in detail:  # SSM: the service restarts so its tasks read it
        row = db_session.get(Deployment, number) if isinstance(number, int) else None
        return f"restart {row.status.replace('_', ' ')}" if row is not None else "written"
    if not isinstance(number, int):
        return "written"
    end = ended.get((str(detail.get("flag")), number))
    if end is None:
        return DEPLOYING
    return {"ok": "complete", "rolled_back": "rolled back by AppConfig"}.get(
        end.outcome, end.outcome
    )


def _still_rolling_out(number: object) -> str:
    """The note of a flag change whose AppConfig rollout has not ended, as opsbot last saw.

    Its undo stops that deployment (bot/flags/flows.py), and AppConfig rolls back to the
    version before it; a profile's first deployment has none to go back to, and its undo
    waits for the rollout to complete.
    """
    shown = str(number) if isinstance(number, int) else "<number>"
    return (
        f"still rolling out (AppConfig deployment {shown}): its undo stops that deployment, "
        "and AppConfig rolls back to the version before it (a first deployment has none: "
        "its undo waits for it to complete)"
    )


def _failed_status(entry: AuditRecord) -> str | None:
    """What a failed change left in place (see `_wrote`); None for a change done."""
    if entry.outcome != "failed":
        return None
    detail = entry.detail or {}
    if detail.get("may_have_started"):
        return "may have started (AppConfig's answer was lost)"
    if detail.get("may_have_written"):
        return "may have been written, not restarted"
    return "written, not restarted"


def _wrote(entry: AuditRecord) -> bool:
    """Whether a change line left something in place: done, or failed after its write.

    An SSM parameter written before its restart failed is what every task ECS
    starts from then on reads; an AppConfig deployment whose start was not
    answered may run. A failure that wrote nothing (or only a version AppConfig
    never deployed) changed nothing.
    """
    if entry.outcome == "ok":
        return True
    if entry.outcome != "failed":
        return False
    detail = entry.detail or {}
    return bool(
        detail.get("parameter_version") is not None
        or detail.get("may_have_written")
        or detail.get("may_have_started")
    )


def _flag_total(db_session: Session, *, target: str, since: datetime, until: datetime) -> int:
    """How many flag changes of the window left something in place (see `_wrote`).

    The changes done are counted by the database; the failures, rare, are read (at
    most FAILURES_READ of them) to tell those that wrote.
    """
    where = (
        AuditRecord.target == target,
        AuditRecord.action == FLAG_CHANGE,
        AuditRecord.at >= since,
        AuditRecord.at <= until,
    )
    done = db_session.scalar(
        select(func.count(AuditRecord.id)).where(*where, AuditRecord.outcome == "ok")
    )
    failed = db_session.scalars(
        select(AuditRecord).where(*where, AuditRecord.outcome == "failed").limit(FAILURES_READ)
    )
    return int(done or 0) + sum(1 for entry in failed if _wrote(entry))


def _flag_items(
    db_session: Session, *, app: str, env: str, since: datetime, until: datetime
) -> tuple[list[ChangeItem], int]:
    """The newest flag changes of the window (MAX_ITEMS at most), and how many it holds."""
    target = f"flag:{app}/{env}"
    query = select(AuditRecord).where(
        AuditRecord.target == target,
        AuditRecord.action == FLAG_CHANGE,
        AuditRecord.outcome.in_(("ok", "failed")),
        AuditRecord.at >= since,
        AuditRecord.at <= until,
    )
    order = (AuditRecord.at.desc(), AuditRecord.id.desc())
    # Most failures wrote nothing: read a few times as many lines as are listed.
    found = db_session.scalars(query.order_by(*order).limit(5 * (MAX_ITEMS + 1)))
    rows = [r for r in found if _wrote(r)][:MAX_ITEMS]
    total = len(rows)
    if total == MAX_ITEMS:
        total = max(total, _flag_total(db_session, target=target, since=since, until=until))
    if not rows:
        return [], 0
    oldest = min(r.id for r in rows)
    since_then = select(AuditRecord).where(
        AuditRecord.target == target,
        AuditRecord.action.in_((FLAG_CHANGE, FLAG_DEPLOYMENT)),
        # A refused change (anyone may ask, and be refused) changed nothing: never read.
        AuditRecord.outcome.in_(LATER_OUTCOMES),
        AuditRecord.at >= since,
        AuditRecord.id > oldest,
    )
    # The newest LATER_READ of them: what the listed changes became. Should more be made
    # since, an undo offered on an older reading is still refused when it runs, if the
    # flag is at another version by then (bot/flags/flows.py).
    newest = since_then.order_by(AuditRecord.id.desc()).limit(LATER_READ)
    later = list(reversed(list(db_session.scalars(newest))))
    ended = {
        (str((e.detail or {}).get("flag")), int((e.detail or {}).get("deployment") or 0)): e
        for e in later
        if e.action == FLAG_DEPLOYMENT
    }
    waiting = pending(db_session, kind=FLAG_UNDO, target=target)
    items = []
    for entry in rows:
        detail = entry.detail or {}
        flag = str(detail.get("flag") or "?")
        before = _state(detail.get("before"))
        after = _state(detail.get("after"))
        status = _failed_status(entry) or _flag_status(db_session, entry, ended)
        undo, no_undo, note = _flag_undo(
            entry,
            flag=flag,
            before=before,
            after=after,
            status=status,
            later=later,
            ended=ended,
        )
        if undo is not None:
            asked = [a for a in waiting if (a.payload or {}).get("flag") == flag]
            if asked:
                undo, no_undo = None, f"a change of it waits for approval (request #{asked[-1].id})"
        items.append(
            ChangeItem(
                key=f"flag:{entry.id}",
                kind="flag",
                at=entry.at,
                actor=entry.actor,
                subject=flag,
                before=_state_text(before),
                after=_state_text(after),
                status=status,
                undo=undo,
                no_undo=no_undo,
                note=note,
            )
        )
    return items, total


def _stayed(entry: AuditRecord, ended: dict[tuple[str, int], AuditRecord]) -> bool:
    """Whether a later flag change left something in place that its rollout did not take
    back: AppConfig rolls a deployment back (an alarm monitor, most often the very alarm
    firing), or it ends failed."""
    if not _wrote(entry):
        return False
    detail = entry.detail or {}
    number = detail.get("deployment")
    if "parameter_version" in detail or not isinstance(number, int):
        return True
    end = ended.get((str(detail.get("flag")), number))
    return end is None or end.outcome == "ok"


def _deployed(entry: AuditRecord) -> bool:
    """Whether an AppConfig change line started a deployment (or may have): a version
    written and never deployed leaves the deployed one as it was."""
    return entry.outcome == "ok" or bool((entry.detail or {}).get("may_have_started"))


def _flag_undo(
    entry: AuditRecord,
    *,
    flag: str,
    before: dict[str, Any],
    after: dict[str, Any],
    status: str,
    later: list[AuditRecord],
    ended: dict[tuple[str, int], AuditRecord],
) -> tuple[Undo | None, str | None, str | None]:
    """The undo of a flag change, or why it has none; and a note on a later change of the
    flag that AppConfig did not keep (the button stays then)."""
    was, now = enabled_of(before), enabled_of(after)
    if was is None or now is None or was == now:
        return None, None, None  # attributes only: no one-click undo
    since = [e for e in later if e.action == FLAG_CHANGE and e.id > entry.id and _wrote(e)]
    newer = [e for e in since if (e.detail or {}).get("flag") == flag]
    stayed = [e for e in newer if _stayed(e, ended)]
    if stayed:
        latest = stayed[-1]
        latest_after = (latest.detail or {}).get("after")
        state = enabled_of(latest_after) if isinstance(latest_after, dict) else None
        if state == was:
            word = "on" if was else "off"
            return None, f"already turned {word} again by {_mention(latest.actor)}", None
        return None, f"changed again since, by {_mention(latest.actor)}", None
    if status == "rolled back by AppConfig":
        return None, None, None
    detail = entry.detail or {}
    ssm = "parameter_version" in detail
    version = detail.get("parameter_version" if ssm else "version")
    verb = "on" if was else "off"
    if not isinstance(version, int):
        # Nothing to tell a later change made outside opsbot by: no one-click undo.
        return None, f"the version it left is not known (use `/flag {verb}`)", None
    if not ssm:
        # AppConfig deploys the whole profile: another flag's change since deployed a
        # version after the one this change left, and the undo, pinned to it, is refused.
        other = next(
            (
                e
                for e in reversed(since)
                if (e.detail or {}).get("flag") != flag and _deployed(e) and _stayed(e, ended)
            ),
            None,
        )
        if other is not None:
            name = code(str((other.detail or {}).get("flag") or "?"))
            return (
                None,
                (
                    f"the flags were changed since ({name} by {_mention(other.actor)}): "
                    f"use `/flag {verb}`"
                ),
                None,
            )
    undo = Undo(
        kind=FLAG_UNDO,
        flag=flag,
        verb=verb,
        parameter_version=version if ssm else None,
        deployed_version=None if ssm else version,
        undoes_change=entry.id,
    )
    note = None
    if newer:  # changed again since, and rolled back or failed: it is as this change left it
        undone = newer[-1]
        end = ended.get((flag, int((undone.detail or {}).get("deployment") or 0)))
        what = (
            "rolled back by AppConfig"
            if end is not None and end.outcome == "rolled_back"
            else "its AppConfig deployment failed"
        )
        note = f"changed again by {_mention(undone.actor)}, {what}"
    if status == DEPLOYING:  # what matters most while it runs: the undo waits for it
        note = _still_rolling_out(detail.get("deployment"))
    return undo, None, note


def changes_view(
    db_session: Session,
    *,
    app: str,
    env: str,
    alarm_at: datetime,
    window_min: float,
    incident_id: int | None,
    now: datetime,
) -> ChangesView:
    """Deploys, rollbacks and flag changes of `app/env` in the window before `alarm_at`."""
    since = alarm_at - timedelta(minutes=window_min)
    deploys, deploy_total = _deploy_items(db_session, app=app, env=env, since=since, until=alarm_at)
    flags, flag_total = _flag_items(db_session, app=app, env=env, since=since, until=alarm_at)
    items = sorted(deploys + flags, key=lambda i: i.at, reverse=True)
    running = (
        running_undos(db_session, incident_id=incident_id, now=now)
        if incident_id is not None
        else {}
    )
    if running:
        items = [
            replace(
                item,
                undo=None,
                no_undo=f"being undone by {_mention(running[item.key].actor or '?')}",
            )
            if item.key in running
            else item
            for item in items
        ]
    shown = items[:MAX_ITEMS]
    return ChangesView(
        app=app,
        env=env,
        window_min=window_min,
        items=shown,
        more=max(0, deploy_total + flag_total - len(shown)),
    )
