"""/dbrole check and provision: the checks, the confirmation, the run, the audit.

`check` changes nothing (the role manager checks in a read-only transaction), so
anyone who can type the command may run it; it is audited all the same. `provision`
needs the environment's right (its deployers) and, in a protected environment, the
requester's confirmation (and a second person's approval with `require_approval`),
through the generic pending actions of bot/approvals (kind "dbrole", confirm.py).

Every run of the role manager is audited and counted (`opsbot_dbrole_runs_total
{action,outcome}`, once its audit line commits); one that did not go well is logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from bot.approvals import flows as approval_flows
from bot.approvals.render import actor_text
from bot.apps.errors import AppError, RightUnverifiable
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.dbroles import render, service
from bot.dbroles.errors import DbRoleError
from bot.dbroles.models import CHECK, MANAGE, Outcome
from bot.incidents.render import channel_ref
from bot.slack_text import code

if TYPE_CHECKING:
    from bot.apps.services import Services
    from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

KIND = "dbrole"
# The `action` label of opsbot_dbrole_runs_total: what the person typed.
METRIC_ACTIONS = {CHECK: "check", MANAGE: "provision"}
_COUNTED = "dbroles.counted"  # Session.info: runs counted once the session commits
_WIRED: WeakKeyDictionary[sessionmaker[Session], Metrics] = WeakKeyDictionary()


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
    error: Exception | str,
    **detail: Any,
) -> None:
    """Audit a request refused before the role manager ran; a right Slack could not
    confirm is "failed" (nobody was found without it), not "refused"."""
    if isinstance(error, RightUnverifiable):
        detail["unverifiable"] = error.reason
    _audit(
        services,
        actor=actor,
        action=action,
        target=f"dbrole:{app}/{env}",
        outcome="failed" if isinstance(error, RightUnverifiable) else "refused",
        detail={"reason": str(error), **detail},
    )


def count_runs_after_commit(sessions: sessionmaker[Session], metrics: Metrics) -> None:
    """Count role-manager runs (`opsbot_dbrole_runs_total`) once their audit lines commit.

    The same sessions and metrics wired twice count once.
    """
    if _WIRED.get(sessions) is metrics:
        return
    _WIRED[sessions] = metrics

    @event.listens_for(sessions, "after_commit")
    def after_commit(db_session: Session) -> None:
        for action, outcome in db_session.info.pop(_COUNTED, []):
            metrics.dbrole_runs.labels(action, outcome).inc()

    @event.listens_for(sessions, "after_rollback")
    def after_rollback(db_session: Session) -> None:
        db_session.info.pop(_COUNTED, None)


def _outcome_word(outcome: Outcome) -> str:
    if outcome.failure is not None:
        return "unknown" if outcome.unanswered else "failed"
    if outcome.refused:
        return "refused"
    return "ok" if outcome.ok else "problems"


def _why(outcome: Outcome) -> str:
    """What went wrong, for the log: the failure, or the role manager's first errors."""
    if outcome.failure is not None:
        return outcome.failure
    errors = outcome.result.errors if outcome.result is not None else []
    return "; ".join(error[:300] for error in errors[:5]) or "no errors reported"


def _ran(
    services: Services,
    *,
    target: Target,
    actor: str,
    outcome: Outcome,
    detail: dict[str, Any],
    request_id: int | None,
) -> None:
    """Audit and count a run of the role manager; log one that did not go well."""
    word = _outcome_word(outcome)
    verb = METRIC_ACTIONS[outcome.action]
    with services.sessions() as db_session:
        audit.record(
            db_session,
            at=services.clock.now(),
            actor=actor,
            action=f"dbrole.{verb}",
            target=audit_target(target),
            outcome=word,
            detail=detail,
        )
        db_session.info.setdefault(_COUNTED, []).append((verb, word))
        db_session.commit()
    if word == "ok":
        return
    log.warning(
        "dbrole %s of %s by %s (request %s, function %s): %s: %s",
        verb,
        target.label,
        actor,
        request_id,
        outcome.function,
        word,
        _why(outcome),
        extra={
            "request": request_id,
            "slack_user": actor,
            "target": audit_target(target),
            "function": outcome.function,
            "outcome": word,
        },
    )


def check(services: Services, *, app: str, env: str, actor: str) -> str:
    """Run the role manager's read-only check; return the rendered answer."""
    try:
        target = get_target_or_raise(services.config, app=app, env=env)
        service.function_of_or_raise(target)
    except (AppError, DbRoleError) as exc:
        _refused(services, actor=actor, action="dbrole.check", app=app, env=env, error=exc)
        raise
    outcome = service.run(services, target=target, action=CHECK)
    _ran(
        services,
        target=target,
        actor=actor,
        outcome=outcome,
        detail=outcome.audit_detail(),
        request_id=None,
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
        _refused(services, actor=actor, action="dbrole.provision", app=app, env=env, error=exc)
        raise
    settings = target.settings
    approvals_needed = 1 if settings.require_approval else 0
    if not settings.protected and not approvals_needed:
        return render.outcome_text(execute(services, request, approved_by=[]))
    # What it waits for, and why: a protected environment needs the requester's own
    # confirmation; `require_approval` alone needs only a second person's approval.
    asks, why = (
        ("a confirmation", "is protected")
        if settings.protected
        else ("an approval", "requires approval")
    )
    where = settings.release_channel or channel
    if where is None:
        reason = f"{code(target.label)} needs {asks} in Slack, but there is no channel to ask in."
        _refused(services, actor=actor, action="dbrole.provision", app=app, env=env, error=reason)
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
        f"{code(target.label)} {why}: request #{action.id} to provision its database roles "
        f"waits for {approval_flows.waits_for(action)} in {channel_ref(where)}."
    )


def execute(
    services: Services,
    request: Provision,
    *,
    approved_by: list[str],
    request_id: int | None = None,
) -> Outcome:
    """Run the role manager's `manage` and audit what came of it.

    The requester's right is checked again: clicks may come long after the
    request, and the role manager runs under the requester's name, however
    many approved it (as deploys and flag changes do when they run). A right
    Slack cannot confirm raises RightUnverifiable, audited as failed: nobody was
    found without it.
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
            error=exc,
            approved_by=approved_by,
        )
        raise
    outcome = service.run(services, target=target, action=MANAGE)
    detail = outcome.audit_detail()
    if approved_by:
        detail["approved_by"] = approved_by
    if request_id is not None:
        detail["request"] = request_id
    _ran(
        services,
        target=target,
        actor=request.actor,
        outcome=outcome,
        detail=detail,
        request_id=request_id,
    )
    return outcome
