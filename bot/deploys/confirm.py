"""The "deploy" kind of pending action: who may click, and what runs once they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ActionFailed, ClickRefused
from bot.approvals.registry import CANCEL, Kind, register
from bot.apps.errors import AppError
from bot.apps.registry import get_target_or_raise
from bot.deploys.errors import DeployError
from bot.deploys.models import ROLLBACK
from bot.deploys.plans import Request
from bot.deploys.requests import execute_request, started_text

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.runtime import Runtime


def _authorize(runtime: Runtime, action: PendingAction, user_id: str, decision: str) -> None:
    """The requester may always cancel; anything else needs the environment's deployers."""
    if decision == CANCEL and user_id == action.requested_by:
        return
    request = Request.from_payload(action.payload)
    try:
        target = get_target_or_raise(runtime.config, app=request.app, env=request.env)
        what = "rollbacks of" if request.kind == ROLLBACK else "deploys to"
        runtime.access.require(user_id, target, action=f"{decision} {what}")
    except AppError as exc:
        raise ClickRefused(str(exc)) from exc


def _execute(runtime: Runtime, action: PendingAction) -> str:
    request = Request.from_payload(action.payload)
    approved_by = [u for u in [action.confirmed_by, *action.approvers] if u and u != request.actor]
    try:
        deployment = execute_request(runtime, request, approved_by=approved_by)
    except (AppError, DeployError) as exc:
        raise ActionFailed(str(exc)) from exc
    return started_text(deployment)


DEPLOY_KIND = register(
    Kind(name="deploy", confirm_label="Deploy", authorize=_authorize, execute=_execute)
)
ROLLBACK_KIND = register(
    Kind(name="rollback", confirm_label="Roll back", authorize=_authorize, execute=_execute)
)
