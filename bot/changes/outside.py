"""Deploys made outside opsbot: the ECS service's deployments of task definitions it never made.

Reading ECS is never on the paging path. The first render of an incident
shows "looking at ECS" and schedules a job (bot/changes/jobs.py); the job
reads the service with a quick, single-try client (`LOOK_TIMEOUT_S`), keeps
what it saw in `ecs_looks` (one row per app environment, shared by every
instance; what earlier looks saw is kept beside it, as ECS lists only a
service's latest deployments) and re-renders the message. A look serves every alarm that came at
or before it, and those that came up to `FRESH_FOR` after it, so a storm on one
service reads ECS once a minute at most, however its alarms trickle in. A look
made before the alarm cannot have seen a deploy that came between them: the
section then says when ECS was seen, and how long before the alarm
(`OutsideView.before_alarm_s`). If AWS is unreachable or refuses, the row keeps
why, and the section says in one line that it could not look.

An ECS deployment is opsbot's when opsbot recorded its id, or (its answer
lost) when one of opsbot's deploys, rollbacks or flag rolls of that revision
started within `STARTED_WITHIN` of it. Whose revision it is does not say: a
person who puts back, by hand, a revision opsbot once deployed makes an ECS
deployment opsbot never started, and the section lists it. A flag roll
restarts whatever revision runs, which may be one deployed outside opsbot:
its own ECS deployment is opsbot's, the earlier one it restarted is not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.adapters import ecs
from bot.adapters.aws import AWS_ERRORS, AwsClients, error_code
from bot.changes.models import EcsLook
from bot.config import AppEnvironment
from bot.deploys.models import DEPLOY, FLAG_ROLL, ROLLBACK, Deployment
from bot.deploys.policy import digest_of, short_digest, tag_of

log = logging.getLogger(__name__)

LOOK_TIMEOUT_S = 2.0  # each ECS call of a look: one try, at most this long to connect or read
FRESH_FOR = timedelta(seconds=60)  # a look serves the alarms that came up to this long after it
MAX_DESCRIBED = 4  # task definitions described per look (a service lists 1 to 3 deployments)
# How far apart opsbot's start of a deploy and ECS's createdAt of its deployment may be
# (the update's round trip, and the two clocks), when opsbot did not record the id.
STARTED_WITHIN = timedelta(minutes=2)
# What earlier looks saw is kept this long (the longest changes window, 7 days, and a day
# for an incident open that long), at most MAX_KEPT of it: ECS lists only a service's
# latest deployments, and a deploy seen once happened.
KEEP_SEEN = timedelta(days=8)
MAX_KEPT = 50

LOOKED = "looked"
LOOKING = "looking"
FAILED = "failed"

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_lock = threading.Lock()


@dataclass(frozen=True)
class Seen:
    """A task definition ECS rolled out that opsbot did not register."""

    task_definition: str  # family:revision
    image: str  # a tag or a short digest (from the task definition: text from outside)
    at: datetime  # when ECS started the deployment


@dataclass(frozen=True)
class OutsideView:
    state: str  # looked | looking | failed
    seen: tuple[Seen, ...] = ()
    error: str | None = None
    looked_at: datetime | None = None  # when the look was made (looked, failed)
    # How long before the alarm the look was made (0: at or after it): what ECS ran
    # in between is unknown, and the section says so.
    before_alarm_s: float = 0.0


@dataclass(frozen=True)
class Started:
    """The ECS deployments opsbot started on an app environment, of some revisions."""

    ids: frozenset[str]  # the ECS deployment ids opsbot recorded
    starts: dict[str, tuple[datetime, ...]]  # revision -> when opsbot started rolling it out

    def made(self, *, arn: str, ecs_id: str | None, at: datetime) -> bool:
        """Whether opsbot started the ECS deployment `ecs_id` of `arn`, created at `at`."""
        if ecs_id and ecs_id in self.ids:
            return True
        return any(abs(at - start) <= STARTED_WITHIN for start in self.starts.get(arn, ()))


def opsbot_started(db_session: Session, *, app: str, env: str, arns: set[str]) -> Started:
    """What opsbot's deploys, rollbacks and flag rolls of the revisions `arns` started."""
    if not arns:
        return Started(ids=frozenset(), starts={})
    query = select(
        Deployment.task_definition,
        Deployment.ecs_deployment_id,
        Deployment.started_at,
        Deployment.created_at,
    ).where(
        Deployment.app == app,
        Deployment.env == env,
        Deployment.kind.in_((DEPLOY, ROLLBACK, FLAG_ROLL)),
        Deployment.task_definition.in_(sorted(arns)),
    )
    ids: set[str] = set()
    starts: dict[str, list[datetime]] = {}
    for arn, ecs_id, started_at, created_at in db_session.execute(query):
        if ecs_id:
            ids.add(str(ecs_id))
        # A lost answer leaves started_at empty; an approved request starts after it is made.
        starts.setdefault(str(arn), []).extend(t for t in (started_at, created_at) if t)
    return Started(ids=frozenset(ids), starts={k: tuple(v) for k, v in starts.items()})


def _image_text(image: str | None) -> str:
    if not image:
        return "?"
    return tag_of(image) or f"sha256:{short_digest(digest_of(image))}"


def read_service(
    client: Any, *, settings: AppEnvironment, ours: Callable[[set[str]], Started]
) -> list[dict[str, Any]]:
    """The service's deployments opsbot did not start, as stored in `seen`.

    `ours` tells what opsbot started of the revisions ECS lists.
    """
    state = ecs.describe_service(client, cluster=settings.cluster, service=settings.service)
    started = ours({r.task_definition for r in state.deployments if r.task_definition})
    found: list[dict[str, Any]] = []
    for rollout in state.deployments:
        arn, at = rollout.task_definition, rollout.created_at
        if not arn or at is None or started.made(arn=arn, ecs_id=rollout.id, at=at):
            continue
        if any(item["arn"] == arn for item in found) or len(found) >= MAX_DESCRIBED:
            continue
        definition = ecs.describe_task_definition(client, arn=arn)
        found.append(
            {
                "arn": arn,
                "id": rollout.id,
                "task_definition": definition.short,
                "image": _image_text(definition.image_of(settings.container)),
                "at": at.isoformat(),
            }
        )
    return found


def latest(db_session: Session, *, app: str, env: str) -> EcsLook | None:
    query = select(EcsLook).where(EcsLook.app == app, EcsLook.env == env)
    return db_session.scalars(query).first()


def _store(
    sessions: sessionmaker[Session],
    *,
    app: str,
    env: str,
    now: datetime,
    seen: list[dict[str, Any]],
    error: str | None,
) -> None:
    with sessions() as db_session:
        query = select(EcsLook).where(EcsLook.app == app, EcsLook.env == env)
        row = db_session.scalars(query.with_for_update()).first()
        if row is None:
            row = EcsLook(
                app=app, env=env, looked_at=now, error=error, seen=_kept([], seen, now=now)
            )
            db_session.add(row)
        else:
            row.looked_at, row.error = now, error
            row.seen = _kept(list(row.seen or []), seen, now=now)
        try:
            db_session.commit()
        except IntegrityError:  # another instance stored its look first: as good as ours
            db_session.rollback()


def _kept(
    before: list[dict[str, Any]], seen: list[dict[str, Any]], *, now: datetime
) -> list[dict[str, Any]]:
    """What a look saw, with what earlier looks saw that it no longer lists (ECS drops a
    service's older deployments), newest first: one entry per ECS deployment (revision
    and start), none older than KEEP_SEEN, at most MAX_KEPT."""
    kept: dict[tuple[str, str], tuple[datetime, dict[str, Any]]] = {}
    for item in [*seen, *before]:  # the newer look's entry wins
        at = _when(item.get("at"))
        key = (str(item.get("arn")), str(item.get("at")))
        if at is None or now - at > KEEP_SEEN or key in kept:
            continue
        kept[key] = (at, item)
    newest = sorted(kept.values(), key=lambda pair: pair[0], reverse=True)
    return [item for _, item in newest[:MAX_KEPT]]


def serves(row: EcsLook, *, alarm_at: datetime) -> bool:
    """Whether a look is the one for an alarm: made after it, or at most `FRESH_FOR` before."""
    return row.looked_at >= alarm_at - FRESH_FOR


def look(
    *,
    sessions: sessionmaker[Session],
    aws: AwsClients,
    app: str,
    env: str,
    settings: AppEnvironment,
    alarm_at: datetime,
    now: datetime,
    count: Callable[[str], None],
) -> None:
    """Make sure `ecs_looks` holds a look at `app/env` that serves an alarm of `alarm_at`.

    `count` hears the outcome (ok, failed, cached): the opsbot_ecs_looks metric.
    """
    with _locks_lock:
        lock = _locks.setdefault((app, env), threading.Lock())
    with lock:  # a second job of the same storm waits, then uses the first one's look
        with sessions() as db_session:
            row = latest(db_session, app=app, env=env)
            if row is not None and serves(row, alarm_at=alarm_at):
                count("cached")
                return

        def ours(arns: set[str]) -> Started:
            with sessions() as db_session:
                return opsbot_started(db_session, app=app, env=env, arns=arns)

        error: str | None = None
        seen: list[dict[str, Any]] = []
        try:
            client = aws.get("ecs", timeout_s=LOOK_TIMEOUT_S)
            seen = read_service(client, settings=settings, ours=ours)
        except ecs.ServiceNotFound:
            error = "ServiceNotFound"
        except AWS_ERRORS as exc:
            error = error_code(exc) or type(exc).__name__
        except Exception:  # an answer we cannot read: say so rather than look again and again
            log.exception("looking at ECS for %s/%s failed", app, env)
            error = "unreadable answer (logged)"
        outcome = "failed" if error else "ok"
        count(outcome)
        log.info(
            "looked at ECS for %s/%s: %s",
            app,
            env,
            error or f"{len(seen)} task definition(s) not made by opsbot",
            extra={"app": app, "env": env, "outcome": outcome, "seen": len(seen)},
        )
        # The job runs after the alarm's transaction committed, so this look comes after
        # the alarm even when this instance's clock runs behind the one that took it in.
        looked_at = max(now, alarm_at)
        _store(sessions, app=app, env=env, now=looked_at, seen=seen, error=error)


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _seen_of(db_session: Session, row: EcsLook, *, app: str, env: str) -> list[Seen]:
    """What a look saw that opsbot did not start (then or since: a start whose id was
    recorded after the look), newest first."""
    items = list(row.seen or [])
    arns = {str(item.get("arn")) for item in items if item.get("arn")}
    started = opsbot_started(db_session, app=app, env=env, arns=arns)
    seen = []
    for item in items:
        at = _when(item.get("at"))
        ecs_id = item.get("id")
        if at is None:
            continue
        if started.made(arn=str(item.get("arn")), ecs_id=str(ecs_id) if ecs_id else None, at=at):
            continue
        seen.append(
            Seen(
                task_definition=str(item.get("task_definition") or "?"),
                image=str(item.get("image") or "?"),
                at=at,
            )
        )
    return sorted(seen, key=lambda s: s.at, reverse=True)


def outside_view(
    db_session: Session, *, app: str, env: str, since: datetime, until: datetime
) -> OutsideView:
    """What the latest look says about the window; LOOKING while none serves an alarm of `until`."""
    row = latest(db_session, app=app, env=env)
    if row is None or not serves(row, alarm_at=until):
        return OutsideView(state=LOOKING)
    before_alarm_s = max((until - row.looked_at).total_seconds(), 0.0)
    if row.error:
        return OutsideView(
            state=FAILED, error=row.error, looked_at=row.looked_at, before_alarm_s=before_alarm_s
        )
    seen = _seen_of(db_session, row, app=app, env=env)
    return OutsideView(
        state=LOOKED,
        seen=tuple(s for s in seen if since <= s.at <= until),
        looked_at=row.looked_at,
        before_alarm_s=before_alarm_s,
    )


def rolled_out_after(db_session: Session, *, app: str, env: str, after: datetime) -> Seen | None:
    """The newest deploy made outside opsbot that any look saw start after `after`, or None.

    Any look, however old (a look that failed keeps what earlier ones saw), and
    any time up to now (not only the alarm's window): a deploy seen once
    happened, and whatever replaced it since is opsbot's own and recorded in
    `deployments`.
    """
    row = latest(db_session, app=app, env=env)
    if row is None:
        return None
    return next((s for s in _seen_of(db_session, row, app=app, env=env) if s.at > after), None)
