"""/dbrole check and provision: the checks, the confirmation, the run, the audit.

`check` changes nothing (the role manager checks in a read-only transaction), so
anyone who can type the command may run it; it is audited all the same. `provision`
needs the environment's right (its deployers) and, in a protected environment, the
requester's confirmation (and a second person's approval with `require_approval`),
through the generic pending actions of bot/approvals (kind "dbrole", confirm.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.approvals import flows as approval_flows
from bot.approvals.render import actor_text
from bot.apps.errors import AppError
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.dbroles import render, service
from bot.dbroles.errors import DbRoleError
from bot.dbroles.models import CHECK, MANAGE, Outcome
from bot.incidents.render import channel_ref
from bot.slack_text import code

if TYPE_CHECKING:
    from bot.apps.services import Services

KIND = "dbrole"


@dataclass(frozen=True)
class Provision:
    """A provision request, as a pending action carries it."""

    app: str
    env: str
    actor: str

    def to_payload(self) -> dict[str, Any]:
        return {"app": self.app, "env": self.env, "actor": self.actor}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Provision:
        return cls(app=str(payload["app"]), env=str(payload["env"]), actor=str(payload["actor"]))


def audit_target(target: Target) -> str:
    return f"dbrole:{target.label}"


def _audit(
    services: Services,
    *,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    detail: dict[str, Any],
) -> None:
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            detail=detail,
        )
        db_session.commit()


def _refused(
    services: Services,
    *,
    actor: str,
    action: str,
    app: str,
    env: str,
    reason: str,
    **detail: Any,
) -> None:
    _audit(
        services,
        actor=actor,
        action=action,
        target=f"dbrole:{app}/{env}",
        outcome="refused",
        detail={"reason": reason, **detail},
    )


def _outcome_word(outcome: Outcome) -> str:
    if outcome.failure is not None:
        return "failed"
    if outcome.refused:
        return "refused"
    return "ok" if outcome.ok else "problems"


def check(services: Services, *, app: str, env: str, actor: str) -> str:
    """Run the role manager's read-only check; return the rendered answer."""
    try:
        target = get_target_or_raise(services.config, app=app, env=env)
        service.function_of_or_raise(target)
    except (AppError, DbRoleError) as exc:
        _refused(services, actor=actor, action="dbrole.check", app=app, env=env, reason=str(exc))
        raise
    outcome = service.run(services, target=target, action=CHECK)
    _audit(
        services,
        actor=actor,
        action="dbrole.check",
        target=audit_target(target),
        outcome=_outcome_word(outcome),
        detail=outcome.audit_detail(),
    )
    return render.outcome_text(outcome)


def provision(services: Services, *, app: str, env: str, actor: str, channel: str | None) -> str:
    """Provision now, or ask for the clicks a protected environment needs; return the answer."""
    request = Provision(app=app, env=env, actor=actor)
    try:
        target = get_target_or_raise(services.config, app=app, env=env)
        function = service.function_of_or_raise(target)
        services.access.require(actor, target, action="provision database roles of")
    except (AppError, DbRoleError) as exc:
        _refused(
            services, actor=actor, action="dbrole.provision", app=app, env=env, reason=str(exc)
        )
        raise
    settings = target.settings
    approvals_needed = 1 if settings.require_approval else 0
    if not settings.protected and not approvals_needed:
        return render.outcome_text(execute(services, request, approved_by=[]))
    where = settings.release_channel or channel
    if where is None:
        reason = (
            f"{code(target.label)} needs a confirmation in Slack, but there is no channel to ask "
            "in."
        )
        _refused(services, actor=actor, action="dbrole.provision", app=app, env=env, reason=reason)
        raise DbRoleError(reason)
    action = approval_flows.ask(
        services,
        kind=KIND,
        target=audit_target(target),
        summary=f"{actor_text(actor)} asks to *provision database roles* of {code(target.label)}",
        details=[
            f"*Role manager* {code(function)}",
            "*What it does* creates or repairs the schema, the migrator and app roles and "
            "their grants; it changes nothing that is already right",
        ],
        payload=request.to_payload(),
        requested_by=actor,
        channel=where,
        needs_confirmation=settings.protected,
        required_approvals=approvals_needed,
    )
    return (
        f"{code(target.label)} is protected: request #{action.id} to provision its database roles "
        f"waits for {approval_flows.waits_for(action)} in {channel_ref(where)}."
    )


def execute(services: Services, request: Provision, *, approved_by: list[str]) -> Outcome:
    """Run the role manager's `manage` and audit what came of it.

    The requester's right is checked again: clicks may come long after the
    request, and the role manager runs under the requester's name, however
    many approved it (as deploys and flag changes do when they run).
    """
    target = get_target_or_raise(services.config, app=request.app, env=request.env)
    try:
        services.access.require(request.actor, target, action="provision database roles of")
    except AppError as exc:
        _refused(
            services,
            actor=request.actor,
            action="dbrole.provision",
            app=request.app,
            env=request.env,
            reason=str(exc),
            approved_by=approved_by,
        )
        raise
    outcome = service.run(services, target=target, action=MANAGE)
    detail = outcome.audit_detail()
    if approved_by:
        detail["approved_by"] = approved_by
    _audit(
        services,
        actor=request.actor,
        action="dbrole.provision",
        target=audit_target(target),
        outcome=_outcome_word(outcome),
        detail=detail,
    )
    return outcome
