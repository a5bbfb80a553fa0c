"""Checking a request against everything before anything changes (`plan`).

What `--force "<reason>"` may override (a change freeze, blocking scan
findings, a missing scan when one is required, redeploying the running image,
a stuck deployment's lock) is gathered so that a refusal lists all of it at
once. Rights, a missing image and someone else's manual lock are never
overridden. A rollback that undoes the deployment in progress needs no force
to take its lock over: undoing a release in flight is what a rollback is for.
Refusals are mrkdwn: a typed tag, ECR's tags and AWS's names in
them are escaped.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from bot.adapters import ecr, ecs
from bot.approvals.flows import as_requesters_right
from bot.apps.registry import Target, get_target_or_raise
from bot.deploys import render, service
from bot.deploys.errors import DeployRefused, aws_call
from bot.deploys.flows import recover
from bot.deploys.models import (
    COMPLETED,
    DEPLOY,
    LOCK_DEPLOY,
    ROLLBACK,
    ROLLING_OUT,
    STUCK,
    Deployment,
)
from bot.deploys.plans import Plan, Request, announce_channel
from bot.deploys.policy import (
    active_freeze,
    blocking_findings,
    digest_of,
    findings_text,
    scan_text,
    short_digest,
    short_image,
    short_task_definition,
    tag_of,
)
from bot.slack_dates import slack_date
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def _waited(request: Request) -> bool:
    """Whether the request waited for clicks: only those carry the forces their message showed."""
    return request.forces_shown is not None


def _require_rights(services: Services, request: Request, target: Target) -> None:
    """The requester (from the CLI: the Slack user its identity maps to) must be a deployer."""
    verb = "roll back" if request.kind == ROLLBACK else "deploy to"
    with as_requesters_right(
        request.actor, doing=f"{verb} {code(target.label)}", waited=_waited(request)
    ):
        services.access.require(request.actor, target, action=verb)


def _require_pinned_aws(services: Services, target: Target) -> None:
    """opsbot's AWS clients must reach the account and region `aws:` names, if it does.

    A cluster and service of the same names may exist elsewhere (where a pipeline's
    own AWS_REGION or credentials point): changing them would record a deploy of
    this environment that never reached it.
    """
    pinned = services.config.aws
    with aws_call("say which account opsbot's AWS credentials are of"):
        problem = services.aws.elsewhere(account_id=pinned.account_id, region=pinned.region)
    if problem is not None:
        raise DeployRefused(
            f"{code(target.label)} cannot be changed from here: {escape(problem)}. "
            "Nothing was changed."
        )


def _require_force_rights(services: Services, request: Request) -> None:
    """`deploys.force_allowed` must hold the requester; empty: every deployer (checked already).

    Decided where the deployers' right is (bot/apps/access.py): guests never
    force, and a group Slack cannot list refuses as "could not check".
    """
    people = services.config.deploys.force_allowed
    if people.is_empty:
        return
    with as_requesters_right(request.actor, doing="force deploys", waited=_waited(request)):
        services.access.require_force(request.actor, people)


def _tags_hint(services: Services, repository: str) -> str:
    limit = services.config.deploys.recent_tags
    with aws_call(f"list the images of {code(repository)}"):
        recent = ecr.recent_images(services.aws.get("ecr"), repository=repository, limit=limit)
    if not recent:
        return f"{code(repository)} has no tagged images."
    tags = [code(t) for image in recent for t in image.tags][: limit * 2]
    return f"Most recent tags in {code(repository)}: {', '.join(tags)}."


def _resolve_image(services: Services, request: Request, target: Target) -> ecr.Image:
    """The image to deploy: by tag, or by the digest a confirmation pinned (a tag may move)."""
    repository = target.settings.repository
    client = services.aws.get("ecr")
    with aws_call(f"read the image from {code(repository)}"):
        if request.digest:
            image = ecr.find_image(client, repository=repository, digest=request.digest)
        else:
            image = ecr.find_image(client, repository=repository, tag=request.tag)
    if image is None and request.digest:
        raise DeployRefused(
            f"The image that was asked for ({code(request.tag)}, "
            f"{code(short_digest(request.digest))}) is no longer in {code(repository)}: ask again."
        )
    if image is None:
        raise DeployRefused(
            f"There is no image {code(request.tag)} in {code(repository)}. "
            f"{_tags_hint(services, repository)}"
        )
    if request.digest and request.tag and request.tag not in image.tags:
        log.info("tag %r moved away from the approved digest %r", request.tag, request.digest)
    return image


def _tag_of_running(services: Services, repository: str, image: str | None) -> str | None:
    """A tag of the running image: its own (repo:tag), or one ECR gives its digest."""
    digest = digest_of(image)
    if digest is None:
        return tag_of(image)
    with aws_call(f"read the image from {code(repository)}"):
        found = ecr.find_image(services.aws.get("ecr"), repository=repository, digest=digest)
    return found.tags[0] if found is not None and found.tags else None


def _rollback_source(
    db_session: Session, request: Request, current_task_definition: str
) -> Deployment:
    if request.rollback_of is not None:
        chosen = service.get(db_session, deployment_id=request.rollback_of)
        if chosen is None or (chosen.app, chosen.env) != (request.app, request.env):
            raise DeployRefused(
                f"There is no deployment #{request.rollback_of} of {code(request.label)}."
            )
        if chosen.kind not in service.PUTS_IN_PLACE:
            raise DeployRefused(_puts_nothing_in_place(db_session, request, chosen))
        if chosen.status != COMPLETED or not chosen.task_definition:
            raise DeployRefused(
                f"Deployment #{chosen.id} did not complete ({escape(chosen.status)}); roll back "
                f"to one that did: {_rollback_targets(db_session, request)}."
            )
        return chosen
    # Back past the deployment whose revision runs now (past what a rollback
    # restored, too): rolling back twice goes further back, never forward again.
    running = service.newest_completed_with(
        db_session, app=request.app, env=request.env, task_definition=current_task_definition
    )
    while running is not None and running.kind == ROLLBACK and running.rollback_of is not None:
        running = service.get(db_session, deployment_id=running.rollback_of)
    found = service.last_completed(
        db_session,
        app=request.app,
        env=request.env,
        other_than=current_task_definition,
        before=running.id if running is not None else None,
    )
    if found is None:
        since = f" before the one running now (#{running.id})" if running is not None else ""
        raise DeployRefused(
            f"No successful deployment of {code(request.label)}{since} is recorded: "
            f"deploy a tag instead ({code(f'/deploy {request.app} {request.env} <tag>')})."
        )
    return found


def _rollback_targets(db_session: Session, request: Request) -> str:
    """The newest deployments a rollback may go back to, as a refusal lists them."""
    candidates = service.completed(db_session, app=request.app, env=request.env, limit=5)
    listed = ", ".join(f"#{d.id} ({code(d.tag or short_digest(d.digest))})" for d in candidates)
    return listed or "none recorded"


def _puts_nothing_in_place(db_session: Session, request: Request, chosen: Deployment) -> str:
    """Why `chosen` (a flag roll: a restart) is no rollback target, and which deployment is.

    Its tag is the flag change it restarted for, not a version; the deployment
    that put its revision in place before it is the one to go back to.
    """
    said = f"Deployment #{chosen.id} is a {escape(chosen.kind.replace('-', ' '))}, not a version"
    source = (
        service.newest_completed_with(
            db_session,
            app=request.app,
            env=request.env,
            task_definition=chosen.task_definition,
            before=chosen.id,
        )
        if chosen.task_definition
        else None
    )
    if source is None:
        return f"{said}; roll back to a deployment: {_rollback_targets(db_session, request)}."
    return (
        f"{said}; roll back to the deployment that put its revision in place: "
        f"#{source.id} ({code(source.tag or short_digest(source.digest))})."
    )


def _require_undone_revision_runs(request: Request, *, running: str) -> None:
    """An undo rolls back one deploy: refuse once ECS runs anything but what it put in place.

    Otherwise rolling back would also take down whatever replaced it since, by
    opsbot or outside it (CI, the console), and nobody clicking "Roll back to
    1.0.1" on an incident asked for that.
    """
    expected = request.undoes_task_definition
    if expected is None or running == expected:
        return
    raise DeployRefused(
        f"{code(request.label)} now runs {code(short_task_definition(running))}, not the "
        f"revision deploy #{request.undoes} put in place "
        f"({code(short_task_definition(expected))}); nothing was changed."
    )


def _undoes_active(request: Request, busy: Deployment, *, restores: str | None) -> bool:
    """Whether the request rolls back the deployment in progress, `busy`.

    A rollback to the revision `busy` replaced undoes it, rolling out or stuck (an
    incident's undo names it, too). A deployment still starting has no rollout to
    undo yet, its update on its way: it is waited for like any other.
    """
    return (
        request.kind == ROLLBACK
        and busy.kind in (DEPLOY, ROLLBACK)
        and busy.status in (ROLLING_OUT, STUCK)
        and restores is not None
        and restores == busy.previous_task_definition
        and request.undoes in (None, busy.id)
    )


def _require_forces_shown(request: Request, blockers: list[tuple[str, str]]) -> None:
    """A request that waited for clicks forces only what its message showed as forced.

    Approvers judge the force they see: a check that began to block since (a
    freeze that started, a scan that finished, a lock that got stuck) was never
    weighed by anyone, so the reason typed earlier does not override it.
    """
    if request.forces_shown is None:
        return
    unseen = [text for name, text in blockers if name not in request.forces_shown]
    if not unseen:
        return
    raise DeployRefused(
        "\n".join(
            [
                *unseen,
                "The request did not show this as forced (it began to block since), so the "
                "force reason approved then does not override it: nothing was changed. Ask "
                "again to force it in front of whoever approves.",
            ]
        )
    )


def plan(services: Services, request: Request) -> Plan:
    """Check a request against everything; raise what stops it, or return the plan."""
    target = get_target_or_raise(services.config, app=request.app, env=request.env)
    settings = target.settings
    knobs = services.config.deploys
    now = services.clock.now()
    _require_rights(services, request, target)
    _require_pinned_aws(services, target)

    with services.sessions() as db_session:
        manual = service.manual_lock(db_session, app=request.app, env=request.env)
        if manual is not None and manual.holder != request.actor:
            raise DeployRefused(
                f"{code(request.label)} is {render.lock_text(manual)}. Only they can deploy it "
                f"until {code(f'/deploy unlock {request.app} {request.env}')}."
            )
    busy = busy_deployment(services, app=request.app, env=request.env)

    client = services.aws.get("ecs")
    with aws_call("read the service"):
        state = ecs.describe_service(client, cluster=settings.cluster, service=settings.service)
        current = ecs.describe_task_definition(client, arn=state.task_definition)
    current_image = current.image_of(settings.container)
    if current_image is None:
        raise DeployRefused(
            f"The task definition {code(current.short)} has no container "
            f"{code(settings.container)} (it has "
            f"{', '.join(code(n) for n in current.container_names())}): check the configuration."
        )

    _require_undone_revision_runs(request, running=state.task_definition)

    task_definition = None
    rollback_of = None
    if request.kind == ROLLBACK:
        with services.sessions() as db_session:
            source = _rollback_source(db_session, request, state.task_definition)
        if source.task_definition == state.task_definition:
            raise DeployRefused(
                f"{code(request.label)} already runs deployment #{source.id}'s revision "
                f"{code(short_task_definition(source.task_definition))}."
            )
        digest = source.digest
        pinned = source.image
        task_definition = source.task_definition
        rollback_of = source.id
        tag = source.tag
    else:
        image = _resolve_image(services, request, target)
        with aws_call(f"read the repository {code(settings.repository)}"):
            uri = ecr.repository_uri(services.aws.get("ecr"), repository=settings.repository)
        digest = image.digest
        pinned = f"{uri}@{digest}"
        tag = request.tag or (image.tags[0] if image.tags else None)

    blockers: list[tuple[str, str]] = []
    with aws_call("read the image's scan findings"):
        scan = ecr.scan(services.aws.get("ecr"), repository=settings.repository, digest=digest)
    blocking = blocking_findings(scan, blocking=list(knobs.blocking_severities))
    if blocking:
        blockers.append(
            (
                "scan",
                f"The image has {escape(findings_text(blocking))} finding(s) in its ECR scan "
                f"(all: {escape(findings_text(scan.counts))}).",
            )
        )
    elif knobs.require_scan and not scan.has_results:
        blockers.append(
            ("scan", f"The image has no completed ECR scan ({escape(scan_text(scan))}).")
        )
    freeze = active_freeze(settings, now=now)
    if freeze is not None:
        blockers.append(
            (
                "freeze",
                f"{code(request.label)} is in a change freeze until {slack_date(freeze.end)}: "
                f"{escape(freeze.reason)}.",
            )
        )
    if request.kind == DEPLOY and digest_of(current_image) == digest:
        blockers.append(
            (
                "redeploy",
                f"{code(request.label)} already runs this image ({code(short_image(pinned))}).",
            )
        )
    takeover = None
    if busy is not None:
        if _undoes_active(request, busy, restores=task_definition):
            takeover = busy.id  # no force: see _undoes_active
        elif busy.status != STUCK:
            raise DeployRefused(render.busy_text(busy))
        else:
            blockers.append(("lock", render.busy_text(busy)))
            takeover = busy.id

    forced: tuple[str, ...] = ()
    if blockers:
        if not request.force_reason:
            lines = [text for _, text in blockers]
            if request.undoes is not None:
                # An incident's Undo button cannot add a force: name the command that can.
                typed = f'/rollback {request.app} {request.env} {rollback_of} --force "<reason>"'
                lines.append(f"Type {code(typed)} to go ahead anyway (it is audited).")
            else:
                lines.append('Add `--force "<reason>"` to go ahead anyway (it is audited).')
            raise DeployRefused("\n".join(lines))
        _require_forces_shown(request, blockers)
        _require_force_rights(services, request)
        forced = tuple(name for name, _ in blockers)

    scan_record = {"status": scan.status, "counts": scan.counts, "text": scan_text(scan)}
    return Plan(
        request=replace(request, digest=digest, tag=tag, rollback_of=rollback_of),
        target=target,
        image=pinned,
        digest=digest,
        tag=tag,
        task_definition=task_definition,
        current_task_definition=state.task_definition,
        current_image=current_image,
        current_tag=_tag_of_running(services, settings.repository, current_image),
        scan=scan_record,
        forced=forced,
        takeover=takeover,
        channel=announce_channel(target, request),
        notes=tuple(text for _, text in blockers),
    )


def busy_deployment(services: Services, *, app: str, env: str) -> Deployment | None:
    """The deployment holding the environment's deploy lock, once a stale holder is recovered.

    A takeover recovered as failed hands the lock back to the deployment it was to
    take over (bot/deploys/flows.py): that one is the holder then, recovered in turn.
    """
    recovered: set[int] = set()
    while True:
        with services.sessions() as db_session:
            held = service.get_lock(db_session, app=app, env=env, kind=LOCK_DEPLOY)
            if held is None:
                return None
            if held.deployment_id is None:  # its deployment row is gone: nothing holds it
                service.remove_lock(db_session, held=held)
                db_session.commit()
                return None
            holder_id = held.deployment_id
        if holder_id in recovered or not recover(services, deployment_id=holder_id):
            with services.sessions() as db_session:
                return service.get(db_session, deployment_id=holder_id)
        recovered.add(holder_id)
