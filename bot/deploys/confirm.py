"""The "deploy" kind of pending action: who may click, and what runs once they have.

A run records on its request the deployment it started, in the transaction that
records the deployment, so that whoever follows the request (`opsbot deploy
--wait`) follows that deployment and no other one of the same person or
environment, even when the run stops right after.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from bot.approvals import service as approvals
from bot.approvals.errors import ActionFailed
from bot.approvals.flows import requester_unverifiable
from bot.approvals.registry import Kind, register
from bot.approvals.rights import approvers, require_right
from bot.apps.errors import AppError, RightUnverifiable
from bot.deploys.errors import DeployError
from bot.deploys.models import ROLLBACK
from bot.deploys.plans import Request
from bot.deploys.requests import execute_request, started_text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from bot.approvals.models import PendingAction
    from bot.apps.services import Services

# Where a request's payload holds the id of the deployment its run started. The payload
# is the kind's; `Request.from_payload` reads only what was asked and ignores this.
DEPLOYMENT_KEY = "deployment_id"


def _record_deployment(db_session: Session, deployment_id: int, *, action_id: int) -> None:
    """Record on request `action_id` that its run started `deployment_id`, in the
    transaction that records the deployment."""
    action = approvals.get_or_raise(db_session, action_id=action_id, lock=True)
    action.payload = {**action.payload, DEPLOYMENT_KEY: deployment_id}
    db_session.flush()


def deployment_of(action: PendingAction) -> int | None:
    """The deployment the run of `action` started; None when it recorded none."""
    value = (action.payload or {}).get(DEPLOYMENT_KEY)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _authorize(services: Services, action: PendingAction, user_id: str, decision: str) -> None:
    request = Request.from_payload(action.payload)
    what = "rollbacks of" if request.kind == ROLLBACK else "deploys to"
    require_right(services, action, user_id, decision, app=request.app, env=request.env, what=what)


def _execute(services: Services, action: PendingAction) -> str:
    request = Request.from_payload(action.payload)
    try:
        approved_by = approvers(action, requester=request.actor)
        deployment = execute_request(
            services,
            request,
            approved_by=approved_by,
            action=action,
            on_recorded=partial(_record_deployment, action_id=action.id),
        )
    except RightUnverifiable as exc:  # the requester's, not the clicker's: "could not check"
        raise requester_unverifiable(action, reason=exc.reason) from exc
    except (AppError, DeployError) as exc:
        raise ActionFailed(str(exc)) from exc
    return started_text(deployment)


DEPLOY_KIND = register(
    Kind(name="deploy", confirm_label="Deploy", authorize=_authorize, execute=_execute)
)
ROLLBACK_KIND = register(
    Kind(name="rollback", confirm_label="Roll back", authorize=_authorize, execute=_execute)
)
