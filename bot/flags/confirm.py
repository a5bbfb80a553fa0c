"""The "flag" kind of pending action: who may click, and what runs once they have."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ActionFailed, ClickRefused
from bot.approvals.registry import CANCEL, Kind, register
from bot.apps.errors import AppError
from bot.apps.registry import get_target_or_raise
from bot.flags import flows
from bot.flags.errors import FlagError
from bot.flags.requests import Change

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.runtime import Runtime


def _authorize(runtime: Runtime, action: PendingAction, user_id: str, decision: str) -> None:
    """The requester may always cancel; anything else needs the environment's deployers."""
    if decision == CANCEL and user_id == action.requested_by:
        return
    change = Change.from_payload(action.payload)
    try:
        target = get_target_or_raise(runtime.config, app=change.app, env=change.env)
        runtime.access.require(user_id, target, action=f"{decision} flag changes of")
    except AppError as exc:
        raise ClickRefused(str(exc)) from exc


def _execute(runtime: Runtime, action: PendingAction) -> str:
    change = Change.from_payload(action.payload)
    approved_by = [u for u in [action.confirmed_by, *action.approvers] if u and u != change.actor]
    try:
        return flows.execute(runtime, change, approved_by=approved_by)
    except (AppError, FlagError) as exc:
        raise ActionFailed(str(exc)) from exc


FLAG_KIND = register(
    Kind(name="flag", confirm_label="Change the flag", authorize=_authorize, execute=_execute)
)
