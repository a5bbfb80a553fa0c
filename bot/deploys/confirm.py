"""The "deploy" kind of pending action: who may click, and what runs once they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ActionFailed
from bot.approvals.registry import Kind, register
from bot.approvals.rights import approvers, require_right
from bot.apps.errors import AppError
from bot.deploys.errors import DeployError
from bot.deploys.models import ROLLBACK
from bot.deploys.plans import Request
from bot.deploys.requests import execute_request, started_text

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services


def _authorize(services: Services, action: PendingAction, user_id: str, decision: str) -> None:
    request = Request.from_payload(action.payload)
    what = "rollbacks of" if request.kind == ROLLBACK else "deploys to"
    require_right(services, action, user_id, decision, app=request.app, env=request.env, what=what)


def _execute(services: Services, action: PendingAction) -> str:
    request = Request.from_payload(action.payload)
    try:
        approved_by = approvers(action, requester=request.actor)
        deployment = execute_request(services, request, approved_by=approved_by, action=action)
    except (AppError, DeployError) as exc:
        raise ActionFailed(str(exc)) from exc
    return started_text(deployment)


DEPLOY_KIND = register(
    Kind(name="deploy", confirm_label="Deploy", authorize=_authorize, execute=_execute)
)
ROLLBACK_KIND = register(
    Kind(name="rollback", confirm_label="Roll back", authorize=_authorize, execute=_execute)
)
