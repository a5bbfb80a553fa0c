"""/dbrole check and provision: the checks, the confirmation, the run, the audit.

`check` changes nothing (the role manager checks in a read-only transaction), so
anyone who can type the command may run it; it is audited all the same. `provision`
needs the environment's right (its deployers) and, in a protected environment, the
requester's confirmation (and a second person's approval with `require_approval`),
through the generic pending actions of bot/approvals (kind "dbrole", confirm.py).

Every run of the role manager is audited and counted (`opsbot_dbrole_runs_total
{action,outcome}`, once its audit line commits); one that did not go well is logged.
A provision is audited "started" before the function is invoked, so a run whose
result cannot be written (the database gone meanwhile: it is logged at ERROR and
counted `unknown` instead) or whose process dies still has its line.

A request that waited for clicks runs only as it was asked: under the role
manager its message showed, and with no click the environment demands now that
it did not demand then; otherwise it is refused, audited and said in its thread.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.approvals import flows as approval_flows
from bot.approvals.render import actor_text
from bot.apps.errors import AppError, NotAllowed, RightUnverifiable
from bot.apps.registry import Target, get_target_or_raise
from bot.audit import service as audit
from bot.db import committed
from bot.dbroles import render, service
from bot.dbroles.errors import DbRoleError, RefusedAtRun
from bot.dbroles.models import CHECK, MANAGE, Outcome
from bot.incidents.render import channel_ref
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services
    from bot.observability.metrics import Metrics

log = logging.getLogger(__name__)

KIND = "dbrole"
# The `action` label of opsbot_dbrole_runs_total: what the person typed.
METRIC_ACTIONS = {CHECK: "check", MANAGE: "provision"}
_COUNTED = "dbroles.counted"  # Session.info: runs counted once the session commits
# The pauses before writing a run's result again when the write fails (a database
# blip): the run happened, and its line is what the audit trail has of it.
RESULT_WRITE_WAITS_S: tuple[float, ...] = (0.5, 2.0)
RIGHT = "provision database roles of"


@dataclass(frozen=True)
class Provision:
    """A provision request, as a pending action carries it.

    `function`, `protected` and `require_approval` are what it was asked under: the
    role manager its message showed and what the environment demanded then. A request
    stored before requests carried them (`function` None) runs as configured when it runs.
    """

    app: str
    env: str
    actor: str
    function: str | None = None
    protected: bool = False
    require_approval: bool = False

    def to_payload(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "env": self.env,
            "actor": self.actor,
            "function": self.function,
            "protected": self.protected,
            "require_approval": self.require_approval,
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Provision:
        function = payload.get("function")
        return cls(
            app=str(payload["app"]),
            env=str(payload["env"]),
            actor=str(payload["actor"]),
            function=None if function is None else str(function),
            protected=payload.get("protected") is True,
            require_approval=payload.get("require_approval") is True,
        )


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
    """Count role-manager runs (`opsbot_dbrole_runs_total`) once their audit lines commit."""
    committed.on_commit(sessions, _COUNTED, lambda item: metrics.dbrole_runs.labels(*item).inc())


def _outcome_word(outcome: Outcome) -> str:
    if outcome.failure is not None:
        return "unknown" if outcome.unanswered else "failed"
    if outcome.refused:
        return "refused"
    if outcome.did_not_run:  # it found nothing: no problems to repair, a failure
        return "failed"
    return "ok" if outcome.ok else "problems"


def _why(outcome: Outcome) -> str:
    """What went wrong, for the log: the failure, or the role manager's first errors."""
    if outcome.failure is not None:
        return outcome.failure
    errors = outcome.result.errors if outcome.result is not None else []
    return "; ".join(error[:300] for error in errors[:5]) or "no errors reported"


def _record_result(
    services: Services, *, target: Target, actor: str, verb: str, word: str, detail: dict[str, Any]
) -> bool:
    """Write a run's audit line (counted once it commits), tried again after each of
    RESULT_WRITE_WAITS_S; False when every try failed."""
    for tries, wait_s in enumerate((*RESULT_WRITE_WAITS_S, None), start=1):
        try:
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
                committed.note(db_session, _COUNTED, (verb, word))
                db_session.commit()
            return True
        except SQLAlchemyError:
            log.warning(
                "dbrole %s of %s by %s (request %s): cannot write its audit line (try %s)",
                verb,
                target.label,
                actor,
                detail.get("request"),
                tries,
                exc_info=True,
                extra={"request": detail.get("request"), "slack_user": actor, "tries": tries},
            )
        if wait_s is None:
            return False
        time.sleep(wait_s)
    return False


def _unrecorded(
    services: Services,
    *,
    target: Target,
    actor: str,
    outcome: Outcome,
    request_id: int | None,
    word: str,
) -> None:
    """A run whose audit line could not be written: its whole outcome goes to the log,
    and it is counted `unknown` (the audit trail has at most its "started" line)."""
    verb = METRIC_ACTIONS[outcome.action]
    changed = outcome.result.changed[:50] if outcome.result is not None else []
    errors = outcome.result.errors[:50] if outcome.result is not None else []
    log.error(
        "dbrole %s of %s by %s (request %s, function %s) ended %s, but its audit line "
        "could not be written: changed %r; errors %r; %s",
        verb,
        target.label,
        actor,
        request_id,
        outcome.function,
        word,
        changed,
        errors,
        outcome.failure or "no failure",
        extra={
            "request": request_id,
            "slack_user": actor,
            "target": audit_target(target),
            "function": outcome.function,
            "outcome": word,
            "changed": changed,
            "errors": errors,
        },
    )
    committed.now(services.sessions, _COUNTED, (verb, "unknown"))


def _ran(
    services: Services,
    *,
    target: Target,
    actor: str,
    outcome: Outcome,
    detail: dict[str, Any],
    request_id: int | None,
) -> None:
    """Audit and count a run of the role manager; log one that did not go well.

    The run happened whatever the audit write does: a write that keeps failing is
    logged and counted, never raised, so the person still reads what was done.
    """
    word = _outcome_word(outcome)
    verb = METRIC_ACTIONS[outcome.action]
    if not _record_result(
        services, target=target, actor=actor, verb=verb, word=word, detail=detail
    ):
        _unrecorded(
            services, target=target, actor=actor, outcome=outcome, request_id=request_id, word=word
        )
        return
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


def _require_pinned_aws(services: Services, target: Target) -> None:
    """opsbot's AWS clients must reach the account and region `aws:` names, if it does:
    a role manager of the same name elsewhere is not this environment's."""
    pinned = services.config.aws
    try:
        problem = services.aws.elsewhere(account_id=pinned.account_id, region=pinned.region)
    except (BotoCoreError, ClientError) as exc:
        raise DbRoleError(
            f"could not tell which AWS account opsbot's credentials are of ({type(exc).__name__})"
        ) from exc
    if problem is not None:
        raise DbRoleError(
            f"The database roles of {code(target.label)} cannot be provisioned from here: "
            f"{escape(problem)}. Nothing was changed."
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
    try:
        target = get_target_or_raise(services.config, app=app, env=env)
        function = service.function_of_or_raise(target)
        services.access.require(actor, target, action=RIGHT)
        _require_pinned_aws(services, target)
    except (AppError, DbRoleError) as exc:
        _refused(services, actor=actor, action="dbrole.provision", app=app, env=env, error=exc)
        raise
    settings = target.settings
    # What the request is asked under: `execute` holds a request that waits to it.
    request = Provision(
        app=app,
        env=env,
        actor=actor,
        function=function,
        protected=settings.protected,
        require_approval=settings.require_approval,
    )
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


def _require_as_asked(request: Provision, target: Target, function: str) -> None:
    """Refuse a request made under another role manager, or fewer clicks, than now.

    The approvers weighed the role manager the message showed, and the clicks were
    those the environment demanded when it was asked. Another function (a changed
    configuration, a rolling deploy), or a demand added since (`protected`,
    `require_approval`), is nothing anyone agreed to. A request stored before
    requests carried them runs as configured now.
    """
    if request.function is None:
        return
    if function != request.function:
        text = (
            f"{code(target.label)}'s role manager is now {code(function)}, not "
            f"{code(request.function)} as the request showed (it changed while the request "
            "waited); nothing was changed. Ask again to provision with the one configured now."
        )
        raise RefusedAtRun(text, said=text, detail={"shown_function": request.function})
    settings = target.settings
    added = []
    if settings.protected and not request.protected:
        added.append("the requester's confirmation (it is protected)")
    if settings.require_approval and not request.require_approval:
        added.append("the approval of a second person")
    if added:
        text = (
            f"{code(target.label)} now needs {' and '.join(added)}, which it did not when the "
            "request was made (it changed while the request waited); nothing was changed. "
            "Ask again to provision with what it needs now."
        )
        asked_under = {"protected": request.protected, "require_approval": request.require_approval}
        raise RefusedAtRun(text, said=text, detail={"asked_under": asked_under})


def _require_requesters_right(
    services: Services, request: Provision, target: Target, *, waited: bool
) -> None:
    """The requester's right, again: the role manager runs under their name.

    Someone else's click may be the one that runs it: a request that waited says
    who lost which right ("<@alice>, who asked, may no longer ..."), not "You may not".
    """
    try:
        services.access.require(request.actor, target, action=RIGHT)
    except RightUnverifiable:
        raise
    except NotAllowed as exc:
        if not waited:
            raise
        doing = f"{RIGHT} {code(target.label)}"
        said = str(exc)
        plain = f"You may not {doing}."
        why = said.removeprefix(plain).strip() if said.startswith(plain) else f"({said})"
        raise RefusedAtRun(
            f"{actor_text(request.actor)}, who asked, may no longer {doing}. {why} "
            "Nothing was changed.",
            said=f"you may no longer {doing}. Nothing was changed.",
        ) from exc


def _refused_at_run(
    services: Services,
    request: Provision,
    *,
    error: AppError | DbRoleError,
    approved_by: list[str],
    action: PendingAction | None,
) -> None:
    """Audit a provision refused as it came to run (a right Slack could not confirm:
    "failed"). The approval machinery tells the requester of a request that waited,
    in its thread, with the error's `said`.
    """
    unverifiable = isinstance(error, RightUnverifiable)
    detail: dict[str, Any] = {"reason": str(error), "approved_by": approved_by}
    if isinstance(error, RefusedAtRun):
        detail.update(error.detail)
    if isinstance(error, RightUnverifiable):
        detail["unverifiable"] = error.reason
    if action is not None:
        detail["request"] = action.id
    target = f"dbrole:{request.app}/{request.env}"
    outcome = "failed" if unverifiable else "refused"
    with services.sessions() as db_session:
        now = services.clock.now()
        audit.record(
            db_session,
            at=now,
            actor=request.actor,
            action="dbrole.provision",
            target=target,
            outcome=outcome,
            detail=detail,
        )
        db_session.commit()
    log.warning(
        "dbrole provision of %s/%s by %s (request %s) %s when it came to run: %s",
        request.app,
        request.env,
        request.actor,
        detail.get("request"),
        outcome,
        str(error)[:300],
        extra={
            "request": detail.get("request"),
            "slack_user": request.actor,
            "target": target,
            "shown_function": request.function,
            "outcome": outcome,
        },
    )


def execute(
    services: Services,
    request: Provision,
    *,
    approved_by: list[str],
    action: PendingAction | None = None,
) -> Outcome:
    """Run the role manager's `manage` and audit what came of it.

    `action`: the request that waited for clicks, whose run this is. It runs only as
    it was asked (`_require_as_asked`), and the requester's right is checked again:
    clicks may come long after the request, and the role manager runs under the
    requester's name, however many approved it (as deploys and flag changes do
    when they run). A refusal raises (AppError, DbRoleError), audited and said in
    the request's thread. A right Slack cannot confirm raises RightUnverifiable,
    audited as failed: nobody was found without it.
    """
    request_id = None if action is None else action.id
    try:
        target = get_target_or_raise(services.config, app=request.app, env=request.env)
        function = service.function_of_or_raise(target)
        _require_as_asked(request, target, function)
        _require_requesters_right(services, request, target, waited=action is not None)
        _require_pinned_aws(services, target)
    except (AppError, DbRoleError) as exc:
        _refused_at_run(services, request, error=exc, approved_by=approved_by, action=action)
        raise
    asked: dict[str, Any] = {"function": function}
    if approved_by:
        asked["approved_by"] = approved_by
    if request_id is not None:
        asked["request"] = request_id
    # Its own line, committed before the function runs: whatever happens after (the
    # database gone when the result is written, the process dying), the run is on record.
    _audit(
        services,
        actor=request.actor,
        action="dbrole.provision",
        target=audit_target(target),
        outcome="started",
        detail=asked,
    )
    outcome = service.run(services, target=target, action=MANAGE)
    _ran(
        services,
        target=target,
        actor=request.actor,
        outcome=outcome,
        detail={**outcome.audit_detail(), **asked},
        request_id=request_id,
    )
    return outcome


def interrupted(db_session: Session, action: PendingAction, now: datetime) -> None:
    """An approved provision whose run was presumed dead (its claim lapsed): whether the
    role manager ran, and what it did, is unknown. Audited and counted so, in the
    transaction that marks the request failed."""
    request = Provision.from_payload(action.payload)
    verb = METRIC_ACTIONS[MANAGE]
    detail: dict[str, Any] = {"request": action.id, "interrupted": True}
    if request.function is not None:
        detail["function"] = request.function
    audit.record(
        db_session,
        at=now,
        actor=request.actor,
        action=f"dbrole.{verb}",
        target=action.target,
        outcome="unknown",
        detail=detail,
    )
    committed.note(db_session, _COUNTED, (verb, "unknown"))
    log.warning(
        "dbrole provision of %s by %s (request %s, function %s) interrupted: it may have run",
        action.target,
        request.actor,
        action.id,
        request.function,
        extra={
            "request": action.id,
            "slack_user": request.actor,
            "target": action.target,
            "function": request.function,
            "outcome": "unknown",
        },
    )
