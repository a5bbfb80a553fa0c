"""Who may click on an app environment's pending action, and who approved it.

Deploys, rollbacks, flag changes and database-role provisioning share one rule:
the requester may always cancel; anything else needs the environment's right
(its deployers). A right Slack could not confirm (a group it could not list)
refuses the click as "could not check" (ClickUnverifiable), not "may not".
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.approvals.errors import ClickRefused, ClickUnverifiable
from bot.approvals.registry import CANCEL
from bot.apps.errors import AppError, RightUnverifiable
from bot.apps.registry import get_target_or_raise

if TYPE_CHECKING:
    from bot.approvals.models import PendingAction
    from bot.apps.services import Services


def require_right(
    services: Services,
    action: PendingAction,
    user_id: str,
    decision: str,
    *,
    app: str,
    env: str,
    what: str,
) -> None:
    """Raise ClickRefused unless `user_id` may take `decision` on `app`/`env`'s `what`.

    ClickUnverifiable (a ClickRefused) when Slack could not say whether they may.
    """
    if decision == CANCEL and user_id == action.requested_by:
        return
    try:
        target = get_target_or_raise(services.config, app=app, env=env)
        services.access.require(user_id, target, action=f"{decision} {what}")
    except RightUnverifiable as exc:
        raise ClickUnverifiable(str(exc), reason=exc.reason) from exc
    except AppError as exc:
        raise ClickRefused(str(exc)) from exc


def approvers(action: PendingAction, *, requester: str) -> list[str]:
    """Who confirmed or approved the action, other than the person who asked for it."""
    return [u for u in [action.confirmed_by, *action.approvers] if u and u != requester]
