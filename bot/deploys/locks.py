"""Holding an environment on purpose: `/deploy lock`, `/deploy unlock`, reminders.

A manual lock's reminder job has one id per lock, and its next due time follows
from the lock's row (`acquired_at`, `reminded_at`): scheduling it again, from a
re-lock or at start (bot/deploys/jobs.py), replaces the stored job.

Taking a manual lock and starting a deployment (which reads it, then takes the
deploy lock) are serialized per environment (`serialize_locks`): of a lock and a
start at once, either the start sees the lock, or the lock sees the deployment.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.approvals.render import actor_text
from bot.approvals.service import is_slack_user
from bot.apps.errors import AppError, NotAllowed
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.config import DeploySettings
from bot.db import locks
from bot.deploys import render, service
from bot.deploys.errors import DeployRefused
from bot.deploys.models import LOCK_DEPLOY, LOCK_MANUAL, DeployLock, Deployment
from bot.outbox import service as outbox
from bot.slack_dates import slack_date
from bot.slack_text import code, inert

if TYPE_CHECKING:
    from bot.apps.services import Services

REMINDER_JOB = "deploys.lock_reminder"


def reminder_job_id(lock_id: int) -> str:
    return f"deploy-lock-reminder-{lock_id}"


def reminder_due(held: DeployLock, knobs: DeploySettings) -> datetime:
    """When the holder of `held` is reminded next: after their last reminder, or after taking it."""
    if held.reminded_at is not None:
        return held.reminded_at + timedelta(minutes=knobs.lock_reminder_every_min)
    return held.acquired_at + timedelta(minutes=knobs.lock_reminder_after_min)


def schedule_reminder(services: Services, *, lock_id: int, at: datetime) -> None:
    """(Re)schedule the lock's reminder job at `at`: it replaces the one stored, if any."""
    services.scheduler.schedule(
        REMINDER_JOB, at=at, job_id=reminder_job_id(lock_id), lock_id=lock_id
    )


def serialize_locks(db_session: Session, *, app: str, env: str) -> None:
    """Hold the environment's locks until this transaction ends: first thing in it.

    A start reads the manual lock and then inserts the deploy lock; without this,
    a manual lock committed in between would let both go ahead (PostgreSQL).
    """
    locks.serialize(db_session, f"deploys.locks:{app}/{env}")


def _deploying(db_session: Session, *, app: str, env: str) -> Deployment | None:
    """The deployment holding the environment's deploy lock, if it is still active."""
    held = service.get_lock(db_session, app=app, env=env, kind=LOCK_DEPLOY)
    if held is None or held.deployment_id is None:
        return None
    deployment = service.get(db_session, deployment_id=held.deployment_id)
    return deployment if deployment is not None and deployment.is_active else None


def _lock_notice(
    db_session: Session, *, target: Target, held: DeployLock, text: str, suffix: str, now: datetime
) -> None:
    channel = target.settings.release_channel
    if channel:
        outbox.post_or_update(
            db_session,
            key=f"deploy-lock:{held.id}:{suffix}",
            channel=channel,
            message=render.lock_notice(text),
            now=now,
        )


def _require(services: Services, actor: str, target: Target, *, action: str) -> None:
    """The deployers' right to `action` the target; a refusal leaves its audit line."""
    try:
        services.access.require(actor, target, action=action)
    except NotAllowed as exc:
        with services.sessions() as db_session:
            audit.record(
                db_session,
                at=services.clock.now(),
                actor=actor,
                action=f"deploy.{action}",
                target=f"deploy:{target.label}",
                outcome="refused",
                detail={"reason": str(exc)},
            )
            db_session.commit()
        raise


def lock(services: Services, *, app: str, env: str, actor: str, reason: str) -> str:
    """Hold an environment on purpose: nobody else deploys it until it is unlocked."""
    target = get_target_or_raise(services.config, app=app, env=env)
    _require(services, actor, target, action="lock")
    reason = reason.strip()
    if not reason:
        raise DeployRefused(f"Say why: {code(f'/deploy lock {app} {env} <reason>')}.")
    now = services.clock.now()
    with services.sessions() as db_session:
        serialize_locks(db_session, app=app, env=env)
        held = service.manual_lock(db_session, app=app, env=env)
        if held is not None and held.holder != actor:
            raise DeployRefused(f"{code(target.label)} is already {render.lock_text(held)}.")
        if held is not None:
            held.reason = reason
            shown = inert(reason, 500)
            text = f'You still hold {code(target.label)}; the reason is now: "{shown}".'
        else:
            held = service.take_lock(
                db_session, app=app, env=env, kind=LOCK_MANUAL, holder=actor, reason=reason, now=now
            )
            if held is None:
                raise DeployRefused(f"{code(target.label)} was locked by someone else just now.")
            text = (
                f":lock: {code(target.label)} is locked: nobody else can deploy it until "
                f"{code(f'/deploy unlock {app} {env}')}."
            )
        active = _deploying(db_session, app=app, env=env)
        if active is not None:
            text += "\n" + render.under_lock_text(active)
        audit.record(
            db_session,
            at=now,
            actor=actor,
            action="deploy.lock",
            target=f"deploy:{target.label}",
            outcome="ok",
            detail={"reason": reason, "lock": held.id},
        )
        _lock_notice(
            db_session,
            target=target,
            held=held,
            text=f":lock: {code(target.label)} {render.lock_text(held)}",
            suffix="taken",
            now=now,
        )
        db_session.commit()
        lock_id, due = held.id, reminder_due(held, services.config.deploys)
    schedule_reminder(services, lock_id=lock_id, at=max(due, now))
    return text


def unlock(services: Services, *, app: str, env: str, actor: str) -> str:
    """Release a manual lock: its holder's, or anyone's by a deployer (said out loud)."""
    target = get_target_or_raise(services.config, app=app, env=env)
    _require(services, actor, target, action="unlock")
    now = services.clock.now()
    with services.sessions() as db_session:
        held = service.manual_lock(db_session, app=app, env=env)
        if held is None:
            raise DeployRefused(f"{code(target.label)} is not locked.")
        holder, since, reason = held.holder, held.acquired_at, held.reason
        service.remove_lock(db_session, held=held)
        audit.record(
            db_session,
            at=now,
            actor=actor,
            action="deploy.unlock",
            target=f"deploy:{target.label}",
            outcome="ok",
            detail={"holder": holder, "since": since.isoformat(), "reason": reason},
        )
        someone_else = holder != actor
        notice = f":unlock: {code(target.label)} unlocked by {actor_text(actor)}"
        if someone_else:
            notice += f" (it was {render.lock_text(held)})"
        _lock_notice(db_session, target=target, held=held, text=notice, suffix="released", now=now)
        if someone_else and is_slack_user(holder):
            outbox.post_or_update(
                db_session,
                key=f"deploy-lock:{held.id}:released:dm",
                channel=holder,
                message=render.lock_notice(notice),
                now=now,
            )
        db_session.commit()
    if someone_else:
        holder_text = actor_text(holder)
        was = f"held by {holder_text} since {slack_date(since)}"
        return f"Unlocked {code(target.label)} (it was {was})."
    return f"Unlocked {code(target.label)}."


def remind_lock(services: Services, *, lock_id: int) -> None:
    """The reminder job: tell the holder of an old manual lock, then again later."""
    knobs = services.config.deploys
    now = services.clock.now()
    with services.sessions() as db_session:
        held = service.get_lock_by_id(db_session, lock_id=lock_id)
        if held is None or held.kind != LOCK_MANUAL:
            return
        due = reminder_due(held, knobs)
        if now >= due:
            age_min = (now - held.acquired_at).total_seconds() / 60
            channel = held.holder if is_slack_user(held.holder) else None
            try:
                channel = (
                    channel
                    or get_target_or_raise(
                        services.config, app=held.app, env=held.env
                    ).settings.release_channel
                )
            except AppError:
                channel = None
            if channel:
                outbox.post_or_update(
                    db_session,
                    key=f"deploy-lock:{held.id}:reminder:{int(now.timestamp())}",
                    channel=channel,
                    message=render.reminder(held, age_min=age_min),
                    now=now,
                )
            held.reminded_at = now
            due = reminder_due(held, knobs)
        db_session.commit()
    schedule_reminder(services, lock_id=lock_id, at=due)
