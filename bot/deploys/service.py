"""Reading and changing deployments and locks. Functions add and flush; the caller commits.

A lock is a row whose (app, env, kind) is unique: taking one is an INSERT,
so two deploys racing for the same environment cannot both get it, on
SQLite or PostgreSQL alike.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot.deploys.errors import DeploymentNotFound
from bot.deploys.models import (
    ACTIVE,
    COMPLETED,
    DEPLOY,
    LOCK_DEPLOY,
    LOCK_MANUAL,
    ROLLBACK,
    STARTING,
    DeployLock,
    Deployment,
)

# The kinds that put a revision in place: a flag roll only restarts the one running,
# and is named by a flag's value, not a version.
PUTS_IN_PLACE = (DEPLOY, ROLLBACK)


def get(db_session: Session, *, deployment_id: int, lock: bool = False) -> Deployment | None:
    query = select(Deployment).where(Deployment.id == deployment_id)
    if lock:
        query = query.with_for_update()
    return db_session.scalars(query).first()


def get_or_raise(db_session: Session, *, deployment_id: int, lock: bool = False) -> Deployment:
    found = get(db_session, deployment_id=deployment_id, lock=lock)
    if found is None:
        raise DeploymentNotFound(f"There is no deployment #{deployment_id}.")
    return found


def history(db_session: Session, *, app: str, env: str, limit: int) -> list[Deployment]:
    """The newest deployments of an environment, newest first."""
    query = (
        select(Deployment)
        .where(Deployment.app == app, Deployment.env == env)
        .order_by(Deployment.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))


def active_for(db_session: Session, *, app: str, env: str) -> Deployment | None:
    """The environment's running deployment (the deploy lock allows one)."""
    query = (
        select(Deployment)
        .where(Deployment.app == app, Deployment.env == env, Deployment.status.in_(ACTIVE))
        .order_by(Deployment.id.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def list_active(db_session: Session) -> list[Deployment]:
    query = select(Deployment).where(Deployment.status.in_(ACTIVE)).order_by(Deployment.id)
    return list(db_session.scalars(query))


def last_completed(
    db_session: Session,
    *,
    app: str,
    env: str,
    other_than: str | None = None,
    before: int | None = None,
) -> Deployment | None:
    """The newest completed deploy or rollback (older than #`before`, of another revision)."""
    query = select(Deployment).where(
        Deployment.app == app,
        Deployment.env == env,
        Deployment.kind.in_(PUTS_IN_PLACE),
        Deployment.status == COMPLETED,
        Deployment.task_definition.is_not(None),
    )
    if other_than is not None:
        query = query.where(Deployment.task_definition != other_than)
    if before is not None:
        query = query.where(Deployment.id < before)
    return db_session.scalars(query.order_by(Deployment.id.desc()).limit(1)).first()


def newest_completed_with(
    db_session: Session,
    *,
    app: str,
    env: str,
    task_definition: str,
    before: int | None = None,
) -> Deployment | None:
    """The newest completed deploy or rollback that put this revision in place (before `before`)."""
    query = select(Deployment).where(
        Deployment.app == app,
        Deployment.env == env,
        Deployment.kind.in_(PUTS_IN_PLACE),
        Deployment.status == COMPLETED,
        Deployment.task_definition == task_definition,
    )
    if before is not None:
        query = query.where(Deployment.id < before)
    return db_session.scalars(query.order_by(Deployment.id.desc()).limit(1)).first()


def completed(db_session: Session, *, app: str, env: str, limit: int) -> list[Deployment]:
    """The newest completed deploys and rollbacks: those a rollback may go back to."""
    query = (
        select(Deployment)
        .where(
            Deployment.app == app,
            Deployment.env == env,
            Deployment.kind.in_(PUTS_IN_PLACE),
            Deployment.status == COMPLETED,
            Deployment.task_definition.is_not(None),
        )
        .order_by(Deployment.id.desc())
        .limit(limit)
    )
    return list(db_session.scalars(query))


def by_task_definition(
    db_session: Session, *, app: str, env: str, task_definition: str
) -> Deployment | None:
    """The newest deployment that rolled out this revision (who put it there, and when)."""
    query = (
        select(Deployment)
        .where(
            Deployment.app == app,
            Deployment.env == env,
            Deployment.task_definition == task_definition,
            Deployment.started_at.is_not(None),
        )
        .order_by(Deployment.id.desc())
        .limit(1)
    )
    return db_session.scalars(query).first()


def create(db_session: Session, *, now: datetime, **values: Any) -> Deployment:
    deployment = Deployment(
        status=STARTING,
        approved_by=[],
        forced=[],
        scan={},
        observed={},
        observations=0,
        created_at=now,
        **values,
    )
    db_session.add(deployment)
    db_session.flush()
    return deployment


# While a deployment is "starting", `observed` holds until when the process starting
# it claims it (flows.StartClaim): nothing reconciles it before then.
CLAIM = "claimed_until"


def claimed_until(deployment: Deployment) -> datetime | None:
    """Until when the process starting the deployment claims it; None if none does."""
    value = (deployment.observed or {}).get(CLAIM)
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def claim(deployment: Deployment, *, until: datetime | None) -> None:
    """Claim the deployment until `until` (None: no longer)."""
    observed = {k: v for k, v in (deployment.observed or {}).items() if k != CLAIM}
    if until is not None:
        observed[CLAIM] = until.isoformat()
    deployment.observed = observed


def settles_at(deployment: Deployment, *, grace: timedelta) -> datetime:
    """When a "starting" deployment may be settled from ECS: past its grace and its claim."""
    after_grace = deployment.created_at + grace
    claimed = claimed_until(deployment)
    return max(after_grace, claimed) if claimed is not None else after_grace


# -- locks ---------------------------------------------------------------------------------


def get_lock(
    db_session: Session, *, app: str, env: str, kind: str, lock: bool = False
) -> DeployLock | None:
    query = select(DeployLock).where(
        DeployLock.app == app, DeployLock.env == env, DeployLock.kind == kind
    )
    if lock:
        query = query.with_for_update()
    return db_session.scalars(query).first()


def get_lock_by_id(db_session: Session, *, lock_id: int) -> DeployLock | None:
    return db_session.get(DeployLock, lock_id)


def take_lock(
    db_session: Session,
    *,
    app: str,
    env: str,
    kind: str,
    holder: str,
    now: datetime,
    reason: str | None = None,
    deployment_id: int | None = None,
) -> DeployLock | None:
    """Take the lock; None if someone holds it already (the caller reads who)."""
    held = DeployLock(
        app=app,
        env=env,
        kind=kind,
        holder=holder,
        reason=reason,
        deployment_id=deployment_id,
        acquired_at=now,
    )
    try:
        with db_session.begin_nested():
            db_session.add(held)
            db_session.flush()
    except IntegrityError:
        return None
    return held


def release_deploy_lock(db_session: Session, *, deployment: Deployment) -> bool:
    """Release the deploy lock if this deployment holds it."""
    result = db_session.execute(
        delete(DeployLock)
        .where(
            DeployLock.app == deployment.app,
            DeployLock.env == deployment.env,
            DeployLock.kind == LOCK_DEPLOY,
            DeployLock.deployment_id == deployment.id,
        )
        .execution_options(synchronize_session="fetch")
    )
    return bool(getattr(result, "rowcount", 0))


def remove_lock(db_session: Session, *, held: DeployLock) -> None:
    db_session.delete(held)
    db_session.flush()


def manual_lock(db_session: Session, *, app: str, env: str) -> DeployLock | None:
    return get_lock(db_session, app=app, env=env, kind=LOCK_MANUAL)


def manual_locks(db_session: Session) -> list[DeployLock]:
    query = select(DeployLock).where(DeployLock.kind == LOCK_MANUAL).order_by(DeployLock.id)
    return list(db_session.scalars(query))
