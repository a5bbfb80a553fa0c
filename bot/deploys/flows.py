"""A deployment's life: started, watched, finished, and what each step sends out.

- `start` takes the deploy lock and records the deployment (one transaction),
  schedules its watch, then registers the new task definition revision and
  updates the service, and records that (another transaction). A process
  that dies in between leaves a "starting" deployment that `reconcile`
  settles from the service's real state.
- `observe` is one look at the rollout (the watch job calls it, so does
  `opsbot deploy --wait`): progress in the thread, then completed, failed,
  stuck or superseded. Two observers never both apply the same look: a
  deployment's `observations` counter is checked under the row lock.
- `recover` makes a deploy lock's holder tell the truth when someone else
  wants the environment.

Every message goes through the outbox, in the transaction of the change.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.orm import Session

from bot.adapters import ecs
from bot.approvals.render import actor_text
from bot.apps.registry import get_target_or_raise
from bot.audit import service as audit
from bot.deploys import render, service
from bot.deploys import rollout as verdicts
from bot.deploys.errors import DeployError, DeployRefused, aws_call
from bot.deploys.models import (
    COMPLETED,
    FAILED,
    FLAG_ROLL,
    LOCK_DEPLOY,
    ROLLING_OUT,
    STARTING,
    STUCK,
    SUPERSEDED,
    Deployment,
)
from bot.deploys.policy import short_task_definition
from bot.deploys.rollout import Seen, Verdict, assess, counts_text, ours
from bot.incidents import flows as incident_flows
from bot.incidents import service as incidents
from bot.incidents.render import duration
from bot.outbox import service as outbox
from bot.slack_text import code

if TYPE_CHECKING:
    from bot.apps.services import Services
    from bot.deploys.plans import Plan

log = logging.getLogger(__name__)

WATCH_JOB = "deploys.watch"


class Reconciler(Protocol):
    def __call__(self, services: Services, *, deployment_id: int) -> str: ...


# Kinds of deployment that settle a crashed start their own way (restarts.py: flag
# rolls, whose revision is the one already running, so that `reconcile`'s test
# would find every one of them "updated").
RECONCILERS: dict[str, Reconciler] = {}


def register_reconciler(kind: str, reconciler: Reconciler) -> None:
    """Settle "starting" deployments of `kind` with `reconciler` (at import, like jobs)."""
    RECONCILERS[kind] = reconciler


def announce(db_session: Session, *, deployment: Deployment, now: datetime) -> None:
    """Post or update the deployment's one message in its channel."""
    if deployment.channel:
        outbox.post_or_update(
            db_session,
            key=deployment.message_key,
            channel=deployment.channel,
            message=render.announcement(deployment),
            now=now,
        )


def thread_reply(db_session: Session, *, deployment: Deployment, text: str, now: datetime) -> None:
    """Say `text` (mrkdwn opsbot composed) in the deployment's thread."""
    if deployment.channel:
        outbox.reply_in_thread(
            db_session,
            key=deployment.message_key,
            channel=deployment.channel,
            fold_key=None,
            item={"text": text},
            render=render.text_reply,
            now=now,
        )


def _progress(
    db_session: Session, *, deployment: Deployment, item: dict[str, Any], now: datetime
) -> None:
    if deployment.channel:
        outbox.reply_in_thread(
            db_session,
            key=deployment.message_key,
            channel=deployment.channel,
            fold_key=f"{deployment.message_key}:progress",
            item=item,
            render=render.progress_reply,
            now=now,
        )


def record(
    db_session: Session,
    *,
    deployment: Deployment,
    action: str,
    outcome: str,
    now: datetime,
    actor: str | None = None,
    **detail: Any,
) -> None:
    """Audit a step of the deployment, with what it rolls out."""
    base = {
        "deployment": deployment.id,
        "tag": deployment.tag,
        "image": deployment.image,
        "task_definition": deployment.task_definition,
        "previous_task_definition": deployment.previous_task_definition,
    }
    audit.record(
        db_session,
        at=now,
        actor=actor or deployment.actor,
        action=action,
        target=deployment.audit_target,
        outcome=outcome,
        detail={**{k: v for k, v in base.items() if v is not None}, **detail},
    )


def finish(
    db_session: Session, *, deployment: Deployment, status: str, outcome: str, now: datetime
) -> None:
    """End a deployment: its status, the lock, the audit entry, its messages."""
    deployment.status = status
    deployment.outcome = outcome
    deployment.finished_at = now
    service.release_deploy_lock(db_session, deployment=deployment)
    record(
        db_session,
        deployment=deployment,
        action=f"{deployment.kind}.finish",
        outcome={COMPLETED: "ok", SUPERSEDED: "superseded"}.get(status, "failed"),
        now=now,
        status=status,
        summary=outcome,
    )
    announce(db_session, deployment=deployment, now=now)
    thread_reply(
        db_session, deployment=deployment, text=f"{render.headline(deployment)}\n{outcome}", now=now
    )
    refresh_incidents(db_session, app=deployment.app, env=deployment.env, now=now)


def refresh_incidents(db_session: Session, *, app: str, env: str, now: datetime) -> None:
    """Re-render the messages of the open incidents of `app/env`.

    A change of theirs just ended (a rollback clicked on one of them, say): the
    status their "Changes before this alarm" shows moves with it.
    """
    for incident in incidents.open_for_app(db_session, app=app, env=env):
        incident_flows.sync_message(db_session, incident=incident, now=now)


def new_watch_token(deployment_id: int) -> str:
    # A new id every time: APScheduler removes a finished date job by its id.
    return f"deploy-watch-{deployment_id}-{uuid.uuid4().hex[:10]}"


def start(services: Services, checked: Plan, *, approved_by: list[str]) -> Deployment:
    """Take the lock, record the deployment, update the service, watch it."""
    request = checked.request
    settings = checked.target.settings
    poll = timedelta(seconds=services.config.deploys.poll_interval_s)
    now = services.clock.now()
    with services.sessions() as db_session:
        if checked.takeover is not None:
            _take_over(db_session, deployment_id=checked.takeover, actor=request.actor, now=now)
        manual = service.manual_lock(db_session, app=request.app, env=request.env)
        if manual is not None and manual.holder != request.actor:
            raise DeployRefused(f"{code(request.label)} is {render.lock_text(manual)}.")
        deployment = service.create(
            db_session,
            now=now,
            app=request.app,
            env=request.env,
            kind=request.kind,
            actor=request.actor,
            tag=checked.tag,
            image=checked.image,
            digest=checked.digest,
            previous_image=checked.current_image,
            previous_tag=checked.current_tag,
            previous_task_definition=checked.current_task_definition,
            task_definition=checked.task_definition,
            rollback_of=request.rollback_of,
            channel=checked.channel,
            force_reason=request.force_reason if checked.forced else None,
        )
        deployment.approved_by = list(approved_by)
        deployment.forced = list(checked.forced)
        deployment.scan = dict(checked.scan)
        deployment.watch_job = new_watch_token(deployment.id)
        held = service.take_lock(
            db_session,
            app=request.app,
            env=request.env,
            kind=LOCK_DEPLOY,
            holder=request.actor,
            deployment_id=deployment.id,
            now=now,
        )
        if held is None:  # another deploy took it since the checks
            db_session.rollback()
            busy = service.active_for(db_session, app=request.app, env=request.env)
            raise DeployRefused(
                render.busy_text(busy) if busy else f"{code(request.label)} is busy; try again."
            )
        record(
            db_session,
            deployment=deployment,
            action=f"{request.kind}.start",
            outcome="ok",
            now=now,
            approved_by=list(approved_by),
            scan=checked.scan.get("text"),
        )
        if checked.forced:
            record(
                db_session,
                deployment=deployment,
                action=f"{request.kind}.force",
                outcome="ok",
                now=now,
                reason=request.force_reason,
                overrode=list(checked.forced),
                checks=list(checked.notes),
            )
        announce(db_session, deployment=deployment, now=now)
        db_session.commit()
        token = deployment.watch_job
    log.info(
        "deployment %s: %s of %s to %s/%s started by %s",
        deployment.id,
        request.kind,
        checked.tag,
        request.app,
        request.env,
        request.actor,
        extra={
            "deployment": deployment.id,
            "app": request.app,
            "env": request.env,
            "slack_user": request.actor,
        },
    )
    services.scheduler.schedule(
        WATCH_JOB, at=now + poll, job_id=token, deployment_id=deployment.id, token=token
    )

    client = services.aws.get("ecs")
    try:
        target_revision = checked.task_definition
        if target_revision is None:
            with aws_call("register the new task definition revision"):
                current = ecs.describe_task_definition(client, arn=checked.current_task_definition)
                registered = ecs.register_with_image(
                    client, current, container=settings.container, image=checked.image
                )
            target_revision = registered.arn
            with services.sessions() as db_session:
                row = service.get_or_raise(db_session, deployment_id=deployment.id, lock=True)
                row.task_definition = target_revision
                db_session.commit()
        with aws_call("update the service"):
            state = ecs.update_service(
                client,
                cluster=settings.cluster,
                service=settings.service,
                task_definition=target_revision,
            )
    except DeployError as exc:
        with services.sessions() as db_session:
            row = service.get_or_raise(db_session, deployment_id=deployment.id, lock=True)
            if row.is_active:
                finish(
                    db_session,
                    deployment=row,
                    status=FAILED,
                    outcome=str(exc),
                    now=services.clock.now(),
                )
            db_session.commit()
        raise

    rollout = next(
        (
            d
            for d in state.deployments
            if d.task_definition == target_revision and d.status == "PRIMARY"
        ),
        state.primary,
    )
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment.id, lock=True)
        row.task_definition = target_revision
        if row.status == STARTING:
            rolling_out(
                db_session, deployment=row, rollout_id=rollout.id if rollout else None, now=now
            )
        else:
            log.warning("deployment %s was %s when its service update returned", row.id, row.status)
        db_session.commit()
        return row


def rolling_out(
    db_session: Session, *, deployment: Deployment, rollout_id: str | None, now: datetime
) -> None:
    """The service was updated: the deployment rolls out (and says so in its thread)."""
    deployment.status = ROLLING_OUT
    deployment.ecs_deployment_id = rollout_id
    deployment.started_at = now
    deployment.last_progress_at = now
    announce(db_session, deployment=deployment, now=now)
    thread_reply(
        db_session,
        deployment=deployment,
        text=(
            f"Service updated to {code(short_task_definition(deployment.task_definition))}"
            + (f" (ECS deployment {code(rollout_id)})" if rollout_id else "")
            + ": watching the rollout."
        ),
        now=now,
    )


def _take_over(db_session: Session, *, deployment_id: int, actor: str, now: datetime) -> None:
    """A forced deploy replaces a stuck one: end it and free its lock."""
    old = service.get(db_session, deployment_id=deployment_id, lock=True)
    if old is None or not old.is_active:
        return
    finish(
        db_session,
        deployment=old,
        status=SUPERSEDED,
        outcome=f"Taken over by a forced deploy of {actor_text(actor)}.",
        now=now,
    )


# -- watching ------------------------------------------------------------------------------


def schedule_watch(services: Services, *, deployment_id: int, delay_s: float | None = None) -> None:
    """(Re)schedule the deployment's watch; any older watch job stands down."""
    delay = services.config.deploys.poll_interval_s if delay_s is None else delay_s
    with services.sessions() as db_session:
        row = service.get(db_session, deployment_id=deployment_id, lock=True)
        if row is None or not row.is_active:
            return
        token = new_watch_token(deployment_id)
        row.watch_job = token
        db_session.commit()
    services.scheduler.schedule(
        WATCH_JOB,
        at=services.clock.now() + timedelta(seconds=delay),
        job_id=token,
        deployment_id=deployment_id,
        token=token,
    )


def resume_watch(services: Services, *, deployment_id: int) -> bool:
    """Put back the watch job the deployment names; False if it is no longer active.

    Under the token the deployment keeps (a new one only if it has none), so the
    job is stored again under its own id and replaces it if it was not lost.
    It is due a poll interval after the last look (or the start), at once if that
    is past.
    """
    poll = timedelta(seconds=services.config.deploys.poll_interval_s)
    with services.sessions() as db_session:
        row = service.get(db_session, deployment_id=deployment_id, lock=True)
        if row is None or not row.is_active:
            return False
        if row.watch_job is None:
            row.watch_job = new_watch_token(deployment_id)
        token = row.watch_job
        due = (row.last_checked_at or row.created_at) + poll
        db_session.commit()
    services.scheduler.schedule(
        WATCH_JOB,
        at=max(due, services.clock.now()),
        job_id=token,
        deployment_id=deployment_id,
        token=token,
    )
    return True


def observe(services: Services, *, deployment_id: int) -> str:
    """One look at the deployment's rollout; returns its status afterwards."""
    knobs = services.config.deploys
    now = services.clock.now()
    with services.sessions() as db_session:
        deployment = service.get_or_raise(db_session, deployment_id=deployment_id)
        if not deployment.is_active:
            return deployment.status
        starting = deployment.status == STARTING
        if starting and now - deployment.created_at < timedelta(seconds=knobs.starting_grace_s):
            return STARTING
        seen_count = deployment.observations
        seen = Seen(
            ecs_deployment_id=deployment.ecs_deployment_id,
            task_definition=deployment.task_definition,
            previous_task_definition=deployment.previous_task_definition,
            observed=dict(deployment.observed or {}),
            last_progress_at=deployment.last_progress_at,
            is_stuck=deployment.status == STUCK,
        )
        app, env = deployment.app, deployment.env
    if starting:
        # Past its grace. Outside the session above: reconcile opens its own, and on
        # SQLite (BEGIN IMMEDIATE) a session still open would hold the write lock it waits for.
        return reconcile(services, deployment_id=deployment_id)
    target = get_target_or_raise(services.config, app=app, env=env)
    client = services.aws.get("ecs")
    try:
        with aws_call("read the service"):
            state = ecs.describe_service(
                client, cluster=target.settings.cluster, service=target.settings.service
            )
            rollout = ours(seen, state)
            stopped: list[ecs.StoppedTask] = []
            reported = len(seen.observed.get("reported_tasks") or [])
            if rollout is not None and rollout.failed > reported:
                stopped = ecs.stopped_tasks(
                    client, cluster=target.settings.cluster, started_by=rollout.id
                )
    except DeployError as exc:
        log.warning("deployment %s: cannot read the rollout: %r", deployment_id, str(exc))
        return ROLLING_OUT if not seen.is_stuck else STUCK
    verdict = assess(
        seen, state, stopped=stopped, now=now, stuck_after=timedelta(minutes=knobs.stuck_after_min)
    )
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.observations != seen_count or not row.is_active:
            return row.status  # another observer applied a look meanwhile
        _apply(
            db_session,
            deployment=row,
            verdict=verdict,
            now=now,
            stuck_min=knobs.stuck_after_min,
        )
        db_session.commit()
        return row.status


def _apply(
    db_session: Session,
    *,
    deployment: Deployment,
    verdict: Verdict,
    now: datetime,
    stuck_min: float,
) -> None:
    previous = dict(deployment.observed or {})
    new_lines = [
        render.stopped_line(t.short_id, t.reason, t.containers) for t in verdict.new_stopped
    ]
    stopped_lines = [*(previous.get("stopped_lines") or []), *new_lines][-10:]
    deployment.observations += 1
    deployment.last_checked_at = now
    deployment.observed = {
        **verdict.counts,
        "reported_tasks": [
            *(previous.get("reported_tasks") or []),
            *(t.arn for t in verdict.new_stopped),
        ],
        "stopped_lines": stopped_lines,
    }
    if verdict.ecs_deployment_id:
        deployment.ecs_deployment_id = verdict.ecs_deployment_id
    if verdict.kind == verdicts.PROGRESS:
        deployment.last_progress_at = now
        note = ""
        if verdict.resumed:
            deployment.status = ROLLING_OUT
            deployment.stuck_at = None
            note = " (moving again)"
        _progress(
            db_session,
            deployment=deployment,
            item={
                "at": now.isoformat(),
                "state": verdict.counts.get("state"),
                "text": counts_text(verdict.counts) + note,
                "stopped": new_lines,
            },
            now=now,
        )
        announce(db_session, deployment=deployment, now=now)
    elif verdict.kind == verdicts.STUCK:
        deployment.status = STUCK
        deployment.stuck_at = now
        announce(db_session, deployment=deployment, now=now)
        if deployment.channel:
            outbox.post_or_update(
                db_session,
                key=f"{deployment.message_key}:stuck:{deployment.observations}",
                channel=deployment.channel,
                message=render.stuck_alert(deployment, minutes=stuck_min),
                now=now,
            )
        record(
            db_session,
            deployment=deployment,
            action=f"{deployment.kind}.stuck",
            outcome="stuck",
            now=now,
            actor="opsbot",
            counts=verdict.counts,
        )
    elif verdict.kind in FINAL_VERDICTS:
        status = FINAL_VERDICTS[verdict.kind]
        took = duration((now - (deployment.started_at or deployment.created_at)).total_seconds())
        revision = short_task_definition(deployment.task_definition)
        if status == COMPLETED:
            outcome = f"Completed in {took}: {counts_text(verdict.counts)} on {code(revision)}."
        elif status == FAILED:
            outcome = f"Failed after {took}: {verdict.summary}."
        else:
            outcome = f"Superseded after {took}: {verdict.summary}."
        if stopped_lines and status != SUPERSEDED:
            outcome += "\n" + "\n".join(f">{line}" for line in stopped_lines[-5:])
        finish(db_session, deployment=deployment, status=status, outcome=outcome, now=now)


FINAL_VERDICTS = {
    verdicts.COMPLETED: COMPLETED,
    verdicts.FAILED: FAILED,
    verdicts.SUPERSEDED: SUPERSEDED,
}


def reconcile(services: Services, *, deployment_id: int) -> str:
    """Settle a deployment left "starting" (the bot died mid-start) from the service's state.

    If the service already runs (or rolls out) the deployment's image or
    revision, the update happened: follow it. Otherwise nothing changed in
    ECS: the deployment failed, and its lock is released.
    """
    with services.sessions() as db_session:
        deployment = service.get_or_raise(db_session, deployment_id=deployment_id)
        if deployment.status != STARTING:
            return deployment.status
        app, env, kind = deployment.app, deployment.env, deployment.kind
        revision, image = deployment.task_definition, deployment.image
    own = RECONCILERS.get(kind)
    if own is not None:
        return own(services, deployment_id=deployment_id)
    if kind == FLAG_ROLL:  # never by its revision, which runs already: see RECONCILERS
        raise DeployError(f"flag roll #{deployment_id} cannot be settled: restarts is not loaded")
    target = get_target_or_raise(services.config, app=app, env=env)
    client = services.aws.get("ecs")
    with aws_call("read the service"):
        state = ecs.describe_service(
            client, cluster=target.settings.cluster, service=target.settings.service
        )
        primary = state.primary
        running_image = None
        if primary is not None:
            running_image = ecs.describe_task_definition(
                client, arn=primary.task_definition
            ).image_of(target.settings.container)
    updated = primary is not None and (
        primary.task_definition == revision
        or (running_image is not None and running_image == image)
    )
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.status != STARTING:
            return row.status
        if updated and primary is not None:
            row.task_definition = primary.task_definition
            rolling_out(db_session, deployment=row, rollout_id=primary.id, now=now)
            found = "the service had been updated: watching it"
        else:
            finish(
                db_session,
                deployment=row,
                status=FAILED,
                outcome=(
                    "Interrupted before the service was updated (the bot stopped); nothing "
                    "changed in ECS. Deploy again."
                ),
                now=now,
            )
            found = "the service was never updated: marked failed"
        record(
            db_session,
            deployment=row,
            action=f"{row.kind}.recover",
            outcome="ok",
            now=now,
            actor="opsbot",
            found=found,
        )
        status = row.status
        db_session.commit()
    if status == ROLLING_OUT:
        schedule_watch(services, deployment_id=deployment_id)
    return status


def recover(services: Services, *, deployment_id: int) -> bool:
    """Make a deploy lock's holder tell the truth; True if the lock is now free.

    A terminal holder frees its lock; a "starting" one past its grace is
    reconciled; a rollout nobody has looked at for a while (its watch job was
    lost with a crash) gets a look now and a new watch.
    """
    knobs = services.config.deploys
    now = services.clock.now()
    with services.sessions() as db_session:
        deployment = service.get(db_session, deployment_id=deployment_id, lock=True)
        if deployment is None:
            return True
        if not deployment.is_active:
            service.release_deploy_lock(db_session, deployment=deployment)
            db_session.commit()
            return True
        status = deployment.status
        created = deployment.created_at
        looked = deployment.last_checked_at or deployment.started_at or created
    stale_after = timedelta(seconds=max(3 * knobs.poll_interval_s, knobs.starting_grace_s))
    try:
        if status == STARTING:
            if now - created < timedelta(seconds=knobs.starting_grace_s):
                return False
            return reconcile(services, deployment_id=deployment_id) not in (
                STARTING,
                ROLLING_OUT,
                STUCK,
            )
        if now - looked < stale_after:
            return False
        after = observe(services, deployment_id=deployment_id)
    except DeployError as exc:
        log.warning("cannot recover deployment %s: %r", deployment_id, str(exc))
        return False
    if after in (ROLLING_OUT, STUCK):
        schedule_watch(services, deployment_id=deployment_id)
        return False
    return True
