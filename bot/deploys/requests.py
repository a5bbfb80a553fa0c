"""Submitting a deploy or rollback: start it, or ask for the clicks it needs.

This is the one entry point Slack (`/deploy`, `/rollback`) and the CLI
(`opsbot deploy`) share; a confirmed request comes back through
`execute_request`, which checks everything again before it starts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bot.approvals import flows as approval_flows
from bot.approvals.render import actor_text
from bot.apps.errors import NotAllowed
from bot.deploys import render
from bot.deploys.checks import plan
from bot.deploys.errors import DeployError, DeployRefused
from bot.deploys.flows import request_refused, start
from bot.deploys.models import ROLLBACK, STARTING, Deployment
from bot.deploys.plans import Plan, Request
from bot.deploys.policy import image_text, short_digest, short_task_definition
from bot.slack_text import code, escape, inert

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.approvals.models import PendingAction
    from bot.apps.registry import Target
    from bot.apps.services import Services

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accepted:
    text: str
    deployment_id: int | None = None
    request_id: int | None = None


def submit(services: Services, request: Request) -> Accepted:
    """Check a request; start it, or ask for the clicks its environment needs."""
    try:
        checked = plan(services, request)
    except (DeployError, NotAllowed) as exc:
        request_refused(services, request, exc)
        raise
    confirmation, approvals_needed = clicks_needed(checked.target, request)
    if not confirmation and not approvals_needed:
        deployment = start(services, checked, approved_by=[])
        return Accepted(text=started_text(deployment), deployment_id=deployment.id)
    if checked.channel is None:
        refused = DeployRefused(
            f"{code(request.label)} needs a confirmation in Slack, but it has no release_channel "
            "to ask in: deploy it from Slack, or configure one."
        )
        request_refused(services, request, refused)
        raise refused
    action = approval_flows.ask(
        services,
        kind=request.kind,  # the deploy and rollback kinds (bot/deploys/confirm.py)
        target=request.audit_target,
        summary=_request_summary(checked),
        details=_request_details(checked),
        # What the message shows (forced checks, the revision it changes) is all the
        # approval covers: `execute_request` and bot/deploys/checks.py hold the run to it.
        payload=replace(
            checked.request,
            forces_shown=checked.forced,
            shown_task_definition=checked.current_task_definition,
        ).to_payload(),
        requested_by=request.actor,
        channel=checked.channel,
        needs_confirmation=confirmation,
        required_approvals=approvals_needed,
    )
    confirmer = (
        "your confirmation" if request.cli_identity is None else "your confirmation in Slack"
    )
    return Accepted(
        text=(
            f"{code(request.label)} is protected: request #{action.id} waits for "
            f"{approval_flows.waits_for(action, confirmer=confirmer)} in "
            f"{render.channel_text(checked.channel)}."
        ),
        request_id=action.id,
    )


def clicks_needed(target: Target, request: Request) -> tuple[bool, int]:
    """The clicks `request` waits for in `target`: the requester's confirmation, and
    how many approvals of others."""
    settings = target.settings
    approvals_needed = 1 if settings.require_approval else 0
    # The requester confirms a request typed in Slack. A CLI run is deliberate in
    # itself: it needs the requester's click only where no second person approves.
    confirmation = settings.protected and (request.cli_identity is None or not approvals_needed)
    return confirmation, approvals_needed


def _request_summary(checked: Plan) -> str:
    request = checked.request
    version = checked.tag or short_digest(checked.digest)
    who = actor_text(request.actor)
    if request.kind == ROLLBACK:
        return (
            f"{who} asks to *roll back* {code(request.label)} to deployment "
            f"#{request.rollback_of} ({code(request.app)} {code(version)})"
        )
    return f"{who} asks to *deploy* {code(request.app)} {code(version)} to {code(request.label)}"


def _request_details(checked: Plan) -> list[str]:
    lines = [
        f"*Image* {image_text(checked.current_image, checked.current_tag)} → "
        f"{image_text(checked.image, checked.tag)}",
        f"*Task definition* {code(short_task_definition(checked.current_task_definition))} → "
        + (
            code(short_task_definition(checked.task_definition))
            if checked.task_definition
            else "a new revision (only the image changes)"
        ),
        f"*Scan* {escape(checked.scan.get('text'))}",
    ]
    request = checked.request
    if request.undoes is not None and request.undoes_task_definition:
        lines.append(
            f"*Undoes* deploy #{request.undoes} "
            f"({code(short_task_definition(request.undoes_task_definition))}); refused if the "
            "service runs another revision by then"
        )
    reason = inert(request.force_reason or "", 1000)
    if checked.forced:
        lines.append(f"*Forced* ({escape(', '.join(checked.forced))}): {reason}")
        lines.extend(f">{note}" for note in checked.notes)
    elif request.force_reason:
        # The approver sees every force, even one that overrides nothing yet.
        lines.append(
            "*Force reason* (nothing blocks it now, so it overrides nothing; a check that "
            f"starts blocking before it runs refuses it): {reason}"
        )
    return lines


def started_text(deployment: Deployment) -> str:
    where = (
        f": follow it in {render.channel_text(deployment.channel)}" if deployment.channel else ""
    )
    verb = "Rollback" if deployment.kind == ROLLBACK else "Deploy"
    revision = code(short_task_definition(deployment.task_definition))
    if deployment.status == STARTING:  # the service update's answer was lost
        return (
            f"{verb} #{deployment.id} of {render.what(deployment)} to {code(deployment.label)} "
            f"({revision}): AWS did not answer the service update; opsbot is checking whether "
            f"the update landed{where}."
        )
    return (
        f"{verb} #{deployment.id} of {render.what(deployment)} to {code(deployment.label)} "
        f"started ({revision}){where}."
    )


def execute_request(
    services: Services,
    request: Request,
    *,
    approved_by: list[str],
    action: PendingAction,
    on_recorded: Callable[[Session, int], None] | None = None,
) -> Deployment:
    """Run `action`, a request whose clicks are in: every check again, then start.

    `on_recorded` runs in the transaction that records the deployment (see `start`).

    It runs only as it was asked: from the revision its message showed, and with
    no click its environment demands now that it did not demand then.
    A payload from before `forces_shown` existed counts as showing no force:
    the approver's message cannot be known, so nothing is overridden unseen.
    One from before `shown_task_definition` runs from whatever ECS runs then.
    """
    if request.forces_shown is None:
        request = replace(request, forces_shown=())
    try:
        checked = plan(services, request)
        _require_shown_revision_runs(checked)
        _require_clicks_asked(checked, action)
    except (DeployError, NotAllowed) as exc:
        request_refused(services, request, exc)
        raise
    return start(services, checked, approved_by=approved_by, on_recorded=on_recorded)


def _require_shown_revision_runs(checked: Plan) -> None:
    """Refuse a request whose message showed another revision than the one ECS runs now.

    The approvers weighed "`api-prod:3` → `api-prod:2`". Once something else runs
    (a deploy approved meanwhile, CI, the console), going ahead would also take that
    newer change down, which nobody agreed to. The revision compared is the one the
    plan read from ECS, so a service ECS cannot describe refuses in `plan` already,
    and the deployment records as its previous revision exactly what was shown.
    """
    request = checked.request
    shown = request.shown_task_definition
    running = checked.current_task_definition
    if shown is None or running == shown:
        return
    log.warning(
        "%s of %s to %s by %s refused: ECS runs %s, the request showed %s",
        request.kind,
        checked.tag or checked.digest,
        request.label,
        request.actor,
        running,
        shown,
        extra={
            "app": request.app,
            "env": request.env,
            "slack_user": request.actor,
            "rollback_of": request.rollback_of,
            "shown_task_definition": shown,
            "running_task_definition": running,
        },
    )
    verb = "roll back" if request.kind == ROLLBACK else "deploy"
    raise DeployRefused(
        f"{code(request.label)} now runs {code(short_task_definition(running))}, not "
        f"{code(short_task_definition(shown))} as the request showed (it changed while the "
        f"request waited); nothing was changed. Ask again to {verb} from what runs now."
    )


def _require_clicks_asked(checked: Plan, action: PendingAction) -> None:
    """Refuse a request asked under fewer clicks than its environment demands now.

    Its clicks are those the environment demanded when it was asked (stored on the
    pending action). One demanded since (`protected` or `require_approval` added
    while it waited, read by a restarted bot or by another instance of a rolling
    deploy) was never given, and nobody agreed to go without it. Asked under more
    than is needed now, it runs.
    """
    request = checked.request
    confirmation, approvals_needed = clicks_needed(checked.target, request)
    if request.cli_identity is not None and action.required_approvals:
        # From the CLI, a second person's approval stands for the requester's click.
        confirmation = False
    added = approval_flows.added_clicks(
        action, needs_confirmation=confirmation, required_approvals=approvals_needed
    )
    if not added:
        return
    log.warning(
        "%s of %s to %s by %s (request %s) refused: it now needs %s",
        request.kind,
        checked.tag or checked.digest,
        request.label,
        request.actor,
        action.id,
        " and ".join(added),
        extra={
            "app": request.app,
            "env": request.env,
            "slack_user": request.actor,
            "request": action.id,
            "asked_under": {
                "needs_confirmation": action.needs_confirmation,
                "required_approvals": action.required_approvals,
            },
        },
    )
    verb = "roll back" if request.kind == ROLLBACK else "deploy"
    raise DeployRefused(
        f"{code(request.label)} now needs {' and '.join(added)}, which it did not when the "
        "request was made (it changed while the request waited); nothing was changed. "
        f"Ask again to {verb} with what it needs now."
    )
