"""The "dbrole" kind of pending action: who may click, and what runs once they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ActionFailed, ClickRefused
from bot.approvals.registry import CANCEL, Kind, register
from bot.apps.errors import AppError
from bot.apps.registry import get_target_or_raise
from bot.dbroles import render
from bot.dbroles.errors import DbRoleError
from bot.dbroles.requests import KIND, Provision, execute

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.runtime import Runtime


def _authorize(runtime: Runtime, action: PendingAction, user_id: str, decision: str) -> None:
    """The requester may always cancel; anything else needs the environment's right."""
    if decision == CANCEL and user_id == action.requested_by:
        return
    request = Provision.from_payload(action.payload)
    try:
        target = get_target_or_raise(runtime.config, app=request.app, env=request.env)
        runtime.access.require(user_id, target, action=f"{decision} database roles of")
    except AppError as exc:
        raise ClickRefused(str(exc)) from exc


def _execute(runtime: Runtime, action: PendingAction) -> str:
    request = Provision.from_payload(action.payload)
    approved_by = [u for u in [action.confirmed_by, *action.approvers] if u and u != request.actor]
    try:
        outcome = execute(runtime, request, approved_by=approved_by)
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
