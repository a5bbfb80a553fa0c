"""The "flag" kind of pending action: who may click, and what runs once they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ActionFailed
from bot.approvals.flows import requester_unverifiable
from bot.approvals.registry import Kind, register
from bot.approvals.rights import approvers, require_right
from bot.apps.errors import AppError, RightUnverifiable
from bot.flags import flows
from bot.flags.errors import FlagError
from bot.flags.requests import Change

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services


def _authorize(services: Services, action: PendingAction, user_id: str, decision: str) -> None:
    change = Change.from_payload(action.payload)
    what = "flag changes of"
    require_right(services, action, user_id, decision, app=change.app, env=change.env, what=what)


def _execute(services: Services, action: PendingAction) -> str:
    change = Change.from_payload(action.payload)
    try:
        approved_by = approvers(action, requester=change.actor)
        return flows.execute(services, change, approved_by=approved_by, action=action)
    except RightUnverifiable as exc:  # the requester's, not the clicker's: "could not check"
        raise requester_unverifiable(action, reason=exc.reason) from exc
    except (AppError, FlagError) as exc:
        raise ActionFailed(str(exc)) from exc


FLAG_KIND = register(
    Kind(name="flag", confirm_label="Change the flag", authorize=_authorize, execute=_execute)
)
