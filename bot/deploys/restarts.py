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
is updated: if it fails, nothing was changed and the deployment ends failed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bot.adapters import ecs
from bot.apps.registry import Target
from bot.deploys import flows, render, service
from bot.deploys.checks import busy_deployment
from bot.deploys.errors import DeployError, DeployRefused, aws_call
from bot.deploys.models import FAILED, FLAG_ROLL, LOCK_DEPLOY, STARTING, Deployment
from bot.deploys.policy import digest_of, tag_of
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.apps.services import Services


def check_free(services: Services, *, target: Target, actor: str) -> None:
    """Refuse (DeployRefused) if a deploy runs or someone else holds the environment."""
    with services.sessions() as db_session:
        manual = service.manual_lock(db_session, app=target.app, env=target.env)
        if manual is not None and manual.holder != actor:
            raise DeployRefused(
                f"{code(target.label)} is {render.lock_text(manual)}. A flag roll restarts its "
                "tasks: ask them, or wait for `/deploy unlock`."
            )
    busy = busy_deployment(services, app=target.app, env=target.env)
    if busy is not None:
        raise DeployRefused(render.busy_text(busy))


def start_flag_roll(
    services: Services,
    *,
    target: Target,
    actor: str,
    what: str,
    channel: str | None,
    approved_by: list[str],
    change: Callable[[], Any],
) -> Deployment:
    """Hold the deploy lock, make `change`, force a new deployment, watch it."""
    settings = target.settings
    check_free(services, target=target, actor=actor)
    client = services.aws.get("ecs")
    with aws_call("read the service"):
        state = ecs.describe_service(client, cluster=settings.cluster, service=settings.service)
        current = ecs.describe_task_definition(client, arn=state.task_definition)
    image = current.image_of(settings.container) or ""
    now = services.clock.now()
    with services.sessions() as db_session:
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
            raise DeployRefused(
                render.busy_text(busy) if busy else f"{code(target.label)} is busy; try again."
            )
        flows.record(
            db_session,
            deployment=deployment,
            action=f"{FLAG_ROLL}.start",
            outcome="ok",
            now=now,
            approved_by=list(approved_by),
        )
        flows.announce(db_session, deployment=deployment, now=now)
        db_session.commit()
        deployment_id, token = deployment.id, deployment.watch_job
    poll = timedelta(seconds=services.config.deploys.poll_interval_s)
    services.scheduler.schedule(
        flows.WATCH_JOB, at=now + poll, job_id=token, deployment_id=deployment_id, token=token
    )

    try:
        change()
    except Exception as exc:
        _fail(services, deployment_id=deployment_id, outcome=f"Nothing changed: {_said(exc)}")
        raise
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
        _fail(
            services,
            deployment_id=deployment_id,
            outcome=(
                f"The flag is written, but the service was not restarted ({exc}): running "
                "tasks keep the old value until they are replaced."
            ),
        )
        raise
    primary = updated.primary
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.status == STARTING:
            flows.rolling_out(
                db_session,
                deployment=row,
                rollout_id=primary.id if primary else None,
                now=services.clock.now(),
            )
        db_session.commit()
        return row


def _said(exc: Exception) -> str:
    """What a failed change says, as mrkdwn: a domain error's message is mrkdwn already.

    The change comes from a domain above this one (flags): its errors say so with a
    true `message_is_mrkdwn`, so that this module needs not know them.
    """
    if isinstance(exc, DeployError) or getattr(exc, "message_is_mrkdwn", False):
        return str(exc)
    return escape(f"{type(exc).__name__}: {exc}")


def _fail(services: Services, *, deployment_id: int, outcome: str) -> None:
    with services.sessions() as db_session:
        row = service.get_or_raise(db_session, deployment_id=deployment_id, lock=True)
        if row.is_active:
            flows.finish(
                db_session, deployment=row, status=FAILED, outcome=outcome, now=services.clock.now()
            )
        db_session.commit()
