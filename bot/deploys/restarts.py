"""A forced new deployment of the revision that runs, for a flag change (kind "flag-roll").

SSM feature flags reach a task as environment variables (FF_<FLAG>) when it
starts, so a change is seen only by new tasks: ECS's forceNewDeployment with
the same task definition. It is a deployment like any other, and deliberately
goes through the deploy machinery:

- it takes the environment's deploy lock: a flag roll and a deploy must not
  replace the same tasks at once (the later one would supersede the earlier,
  and a deploy of an image built before the flag existed would be rolled
  under the flag roll's name); while a deploy runs, a flag roll is refused
  before the flag is written;
- someone else's `/deploy lock` refuses it too: a held environment is not
  restarted under its holder's feet;
- it is watched by the deploy watch job (progress in the release channel's
  thread; completed, failed by the circuit breaker, stuck), and appears in
  `/deploy status` and `/deploy history` as a "flag roll".

`change` (the SSM write) runs after the lock is held and before the service
is updated: if it fails, the deployment ends failed, "nothing changed" unless
the change says it may have been made (its answer lost).

A roll the bot stopped in the middle of (it died after recording the roll,
before or while writing the flag or restarting the service) is settled by
`reconcile`, from what really happened. The revision that runs says nothing
here (a flag roll's revision is the one already running), so it asks:

- the change's owner (flags registers a `ChangeKind`): does the store hold the
  value that was asked?
- ECS: has the service a new deployment, one that was not its primary when the
  roll began (recorded in the roll's `flag-roll.start` audit line)?

Written and restarted: the roll is followed as any rollout. Otherwise it ends
failed and says the flag's real state, in the thread and to the person who
asked; the change's owner audits the change, and `flag-roll.recover` what was
found.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.adapters import ecs
from bot.adapters.aws import longest_call_s
from bot.apps.registry import Target, get_target_or_raise
from bot.audit.models import AuditRecord
from bot.deploys import flows, locks, render, service
from bot.deploys.checks import busy_deployment
from bot.deploys.errors import DeployError, DeployFailed, DeployRefused, aws_call
from bot.deploys.models import FAILED, FLAG_ROLL, LOCK_DEPLOY, ROLLING_OUT, Deployment
from bot.deploys.policy import digest_of, tag_of
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.apps.services import Services

START = f"{FLAG_ROLL}.start"


@dataclass(frozen=True)
class ChangeSeen:
    """A flag roll's change as its owner finds it, after the bot stopped in the middle of it."""

    written: bool  # the store holds the value the roll was started to write
    state: str  # the flag's real state for people (mrkdwn, outside words escaped)
    detail: dict[str, Any] = field(default_factory=dict)  # for the audit lines


@dataclass(frozen=True)
class Settled:
    """How an interrupted flag roll was settled, for its change's owner to audit."""

    deployment: Deployment
    change: dict[str, Any]  # what `start_flag_roll` was given as `record`
    seen: ChangeSeen
    restarted: bool  # ECS started a new deployment of the service since the roll began
    outcome: str  # what people are told


@dataclass(frozen=True)
class ChangeKind:
    """How the domain that makes a flag roll's change looks at it after a crash.

    The deploy machinery cannot read what a change wrote (SSM is the flags'
    business), and the process that made it is gone: only its record remains.
    """

    name: str
    # Read the change's store, outside any transaction; raise DeployError when it cannot.
    inspect: Callable[[Services, dict[str, Any]], ChangeSeen]
    # Audit what came of the change, in the transaction that settles the roll.
    settled: Callable[[Session, Settled, datetime], None]


CHANGE_KINDS: dict[str, ChangeKind] = {}


def register_change_kind(kind: ChangeKind) -> ChangeKind:
    """Register how a kind of change is looked at after a crash (at import, like jobs)."""
    if kind.name in CHANGE_KINDS and CHANGE_KINDS[kind.name] is not kind:
        raise ValueError(f"flag-roll change kind {kind.name!r} is registered twice")
    CHANGE_KINDS[kind.name] = kind
    return kind


def _held_by_someone_else(db_session: Session, *, target: Target, actor: str) -> str | None:
    """Why the environment refuses `actor`'s flag roll when someone else holds it; else None."""
    manual = service.manual_lock(db_session, app=target.app, env=target.env)
    if manual is None or manual.holder == actor:
        return None
    return (
        f"{code(target.label)} is {render.lock_text(manual)}. A flag roll restarts its "
        "tasks: ask them, or wait for `/deploy unlock`."
    )


def check_free(services: Services, *, target: Target, actor: str) -> None:
    """Refuse (DeployRefused) if a deploy runs or someone else holds the environment."""
    with services.sessions() as db_session:
        held = _held_by_someone_else(db_session, target=target, actor=actor)
        if held is not None:
            raise DeployRefused(held)
    busy = busy_deployment(services, app=target.app, env=target.env)
    if busy is not None:
        raise DeployRefused(render.busy_text(busy))


def _count_refused(services: Services) -> None:
    """Count a refused flag roll (its change's owner audits it)."""
    with services.sessions() as db_session:
        flows.count(db_session, kind=FLAG_ROLL, outcome="refused")
        db_session.commit()


def start_flag_roll(
    services: Services,
    *,
    target: Target,
    actor: str,
    what: str,
    channel: str | None,
    approved_by: list[str],
    change: Callable[[], Any],
    record: dict[str, Any],
) -> Deployment:
    """Hold the deploy lock, make `change`, force a new deployment, watch it.

    `record` says what `change` writes, for `reconcile` after a crash: its
    `kind` names a registered ChangeKind, the rest is that kind's own (JSON).
    The start claims the roll while it works, and treats the service update as
    `flows.start` does (a lost answer, a roll given up meanwhile, a late update).
    """
    settings = target.settings
    if str(record.get("kind")) not in CHANGE_KINDS:
        raise ValueError(f"no flag-roll change kind {record.get('kind')!r} is registered")
    try:
        check_free(services, target=target, actor=actor)
    except DeployRefused:
        _count_refused(services)
        raise
    client = services.aws.get("ecs")
    with aws_call("read the service"):
        state = ecs.describe_service(client, cluster=settings.cluster, service=settings.service)
        current = ecs.describe_task_definition(client, arn=state.task_definition)
    # The deployment ECS calls primary now: a later one can only be a restart since.
    rollout_before = state.primary.id if state.primary else None
    image = current.image_of(settings.container) or ""
    now = services.clock.now()
    with services.sessions() as db_session:
        # A manual lock taken since the check refuses it (see locks.serialize_locks).
        locks.serialize_locks(db_session, app=target.app, env=target.env)
        held_text = _held_by_someone_else(db_session, target=target, actor=actor)
        if held_text is not None:
            flows.count(db_session, kind=FLAG_ROLL, outcome="refused")
            db_session.commit()
            raise DeployRefused(held_text)
        deployment = service.create(
            db_session,
            now=now,
            app=target.app,
            env=target.env,
            kind=FLAG_ROLL,
            actor=actor,
            tag=what,
            image=image,
            digest=digest_of(image) or "",
            previous_image=image,
            previous_tag=tag_of(image),
            previous_task_definition=state.task_definition,
            task_definition=state.task_definition,
            channel=channel,
        )
        deployment.approved_by = list(approved_by)
        deployment.watch_job = flows.new_watch_token(deployment.id)
        service.claim(deployment, until=now + flows.START_CLAIM)
        held = service.take_lock(
            db_session,
            app=target.app,
            env=target.env,
            kind=LOCK_DEPLOY,
            holder=actor,
            deployment_id=deployment.id,
            now=now,
        )
        if held is None:  # a deploy took it since the check
            db_session.rollback()
            busy = service.active_for(db_session, app=target.app, env=target.env)
            flows.count(db_session, kind=FLAG_ROLL, outcome="refused")
            db_session.commit()
            raise DeployRefused(
                render.busy_text(busy) if busy else f"{code(target.label)} is busy; try again."
            )
        flows.record(
            db_session,
            deployment=deployment,
            action=START,
            outcome="ok",
            now=now,
            approved_by=list(approved_by),
            # In the deployment's own transaction: what `reconcile` reads after a crash.
            change=dict(record),
            rollout_before=rollout_before,
        )
        flows.count(db_session, kind=FLAG_ROLL, outcome="started")
        flows.announce(db_session, deployment=deployment, now=now)
        db_session.commit()
        deployment_id, token = deployment.id, deployment.watch_job
    poll = timedelta(seconds=services.config.deploys.poll_interval_s)
    services.scheduler.schedule(
        flows.WATCH_JOB, at=now + poll, job_id=token, deployment_id=deployment_id, token=token
    )

    # The change (a call to its store, and a read back when its answer is lost) and the update.
    budget_s = 2 * longest_call_s("ssm") + longest_call_s("ecs")
    with flows.StartClaim(services, deployment_id=deployment_id, budget_s=budget_s):
        try:
            change()
        except Exception as exc:
            flows.fail_start(
                services,
                deployment_id=deployment_id,
                outcome=_not_changed_text(exc),
                error=exc,
            )
            raise
        settled = flows.before_update(services, deployment_id=deployment_id)
        if settled is not None:
            return settled
        try:
            with aws_call("force a new deployment of the service"):
                updated = ecs.update_service(
                    client,
                    cluster=settings.cluster,
                    service=settings.service,
                    task_definition=state.task_definition,
                    force_new_deployment=True,
                )
        except DeployError as exc:
            if isinstance(exc, DeployFailed) and exc.unanswered:
                return flows.update_unanswered(services, deployment_id=deployment_id, error=exc)
            flows.fail_start(
                services,
                deployment_id=deployment_id,
                outcome=(
                    f"The flag is written, but the service was not restarted ({exc}): running "
                    "tasks keep the old value until they are replaced."
                ),
                error=exc,
            )
            raise
    return flows.service_updated(
        services, deployment_id=deployment_id, revision=state.task_definition, state=updated
    )


def _not_changed_text(exc: Exception) -> str:
    """A roll whose change failed: nothing changed, unless its error says it may have.

    A change whose answer was lost says so with a true `may_have_changed` (flags'
    FlagWriteUnknown), so that this module needs not know it.
    """
    if getattr(exc, "may_have_changed", False):
        return f"The service was not restarted: {_said(exc)}"
    return f"Nothing changed: {_said(exc)}"


def _said(exc: Exception) -> str:
    """What a failed change says, as mrkdwn: a domain error's message is mrkdwn already.

    The change comes from a domain above this one (flags): its errors say so with a
    true `message_is_mrkdwn`, so that this module needs not know them.
    """
    if isinstance(exc, DeployError) or getattr(exc, "message_is_mrkdwn", False):
        return str(exc)
    return escape(f"{type(exc).__name__}: {exc}")


# -- after a crash ---------------------------------------------------------------------------


def _start_record(db_session: Session, deployment: Deployment) -> dict[str, Any] | None:
    """The roll's `flag-roll.start` audit detail: what it set out to change, and ECS before."""
    query = (
        select(AuditRecord)
        .where(
            AuditRecord.target == deployment.audit_target,
            AuditRecord.action == START,
            AuditRecord.at >= deployment.created_at,
        )
        .order_by(AuditRecord.id)
    )
    for entry in db_session.scalars(query):
        detail = dict(entry.detail or {})
        if detail.get("deployment") == deployment.id:
            return detail
    return None


def reconcile(services: Services, *, deployment_id: int) -> str:
    """Settle a flag roll left "starting" (the bot died mid-roll) from what really happened.

    Returns the roll's status afterwards; raises DeployError when the flag or
    the service cannot be read (the roll is left as it is, to be looked at again:
    stuck once that has lasted, see `flows._unsettled`).
    """
    with services.sessions() as db_session:
        deployment = service.get_or_raise(db_session, deployment_id=deployment_id)
        if not flows.settling(deployment):
            return deployment.status
        started = _start_record(db_session, deployment)
        app, env = deployment.app, deployment.env
    change = dict((started or {}).get("change") or {})
    kind = CHANGE_KINDS.get(str(change.get("kind"))) if change else None
    if change and kind is None:
        # Recorded, but nobody in this process can read it: do not guess.
        raise DeployError(
            f"flag roll #{deployment_id}: its change {change.get('kind')!r} is unknown"
        )
    seen = kind.inspect(services, change) if kind is not None else None
    target = get_target_or_raise(services.config, app=app, env=env)
    with aws_call("read the service"):
        state = ecs.describe_service(
            services.aws.get("ecs"),
            cluster=target.settings.cluster,
            service=target.settings.service,
        )
    primary = state.primary
    # A primary deployment that was not the primary when the roll began is a restart
    # since: the forced new deployment (or someone else's), whose new tasks read the flag.
    restarted = (
        started is not None
        and "rollout_before" in started
        and primary is not None
        and primary.id != started["rollout_before"]
    )
    follow = seen is not None and seen.written and restarted and primary is not None
    with services.sessions() as db_session:
        now = services.clock.now()
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if not flows.settling(row):
            return row.status
        grace = timedelta(seconds=services.config.deploys.starting_grace_s)
        if now < service.settles_at(row, grace=grace):
            return row.status  # its start claimed it again meanwhile: it is at work
        cause = flows.why_interrupted(row)
        if seen is None:  # a roll recorded before its change was: nothing to go by
            outcome = (
                f"Interrupted ({cause} while restarting the service); nothing recorded "
                "what the flag change wrote. Check the flag with `/flag list` and the service "
                "with `/deploy status`."
            )
            found = "nothing recorded what the roll changed: marked failed"
        elif follow and primary is not None:
            outcome = (
                f"{cause[0].upper()}{cause[1:]} while restarting the service: {seen.state}, and "
                f"ECS deployment {code(primary.id)} restarts its tasks. Watching it."
            )
            found = "the flag was written and the service restarted: watching it"
        elif seen.written:
            outcome = (
                f"Interrupted after the flag was written ({cause}): {seen.state}, but the "
                "service was not restarted: running tasks keep the old value until they are "
                "replaced."
            )
            found = "the flag was written but the service never restarted: marked failed"
        else:
            outcome = (
                f"Interrupted before the flag was written ({cause}): {seen.state}. "
                "Nothing changed: ask again."
            )
            found = "the flag was never written: marked failed"
        if follow and primary is not None:
            row.task_definition = primary.task_definition
            flows.rolling_out(db_session, deployment=row, rollout_id=primary.id, now=now)
            flows.thread_reply(db_session, deployment=row, text=outcome, now=now)
        else:
            flows.finish(db_session, deployment=row, status=FAILED, outcome=outcome, now=now)
        if kind is not None and seen is not None:
            kind.settled(
                db_session,
                Settled(
                    deployment=row, change=change, seen=seen, restarted=restarted, outcome=outcome
                ),
                now,
            )
        flows.record(
            db_session,
            deployment=row,
            action=f"{FLAG_ROLL}.recover",
            outcome="ok",
            now=now,
            actor="opsbot",
            found=found,
            restarted=restarted,
            flag=seen.detail if seen is not None else None,
        )
        # Their answer was lost with the process: tell them now. Under the key of its
        # status, so that a roll ended failed (which `finish` tells a roll without a
        # channel) is told once.
        flows.tell_actor(
            db_session,
            deployment=row,
            key=row.status,
            message=render.direct_notice(row, outcome),
            now=now,
            even_with_channel=True,
        )
        status = row.status
        db_session.commit()
    if status == ROLLING_OUT:
        flows.schedule_watch(services, deployment_id=deployment_id)
    return status


flows.register_reconciler(FLAG_ROLL, reconcile)
