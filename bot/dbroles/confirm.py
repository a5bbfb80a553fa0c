"""The "dbrole" kind of pending action: who may click, and what runs once they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ActionFailed
from bot.approvals.flows import on_interrupted, requester_unverifiable
from bot.approvals.registry import Kind, register
from bot.approvals.rights import approvers, require_right
from bot.apps.errors import AppError, RightUnverifiable
from bot.dbroles import render
from bot.dbroles.errors import DbRoleError
from bot.dbroles.requests import KIND, Provision, execute, interrupted

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services


def _authorize(services: Services, action: PendingAction, user_id: str, decision: str) -> None:
    request = Provision.from_payload(action.payload)
    what = "database roles of"
    require_right(services, action, user_id, decision, app=request.app, env=request.env, what=what)


def _execute(services: Services, action: PendingAction) -> str:
    request = Provision.from_payload(action.payload)
    try:
        approved_by = approvers(action, requester=request.actor)
        outcome = execute(services, request, approved_by=approved_by, action=action)
    except RightUnverifiable as exc:  # the requester's, not the clicker's: "could not check"
        raise requester_unverifiable(action, reason=exc.reason) from exc
    except (AppError, DbRoleError) as exc:
        raise ActionFailed(str(exc)) from exc
    # The confirmation message puts its own icon before what came of it.
    text = render.outcome_text(outcome, icon=False)
    if not outcome.ok:
        raise ActionFailed(text)
    return text


DBROLE_KIND = register(
    Kind(name=KIND, confirm_label="Provision", authorize=_authorize, execute=_execute)
)
on_interrupted(KIND, interrupted)
