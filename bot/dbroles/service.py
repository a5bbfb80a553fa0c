"""Running an environment's role manager: one synchronous Lambda invocation, parsed."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from bot.adapters import awslambda
from bot.apps.registry import Target
from bot.dbroles.errors import DbRoleNotConfigured
from bot.dbroles.models import ManagerResult, Outcome

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def function_of_or_raise(target: Target) -> str:
    """The environment's role-manager function, or DbRoleNotConfigured saying what to set."""
    settings = target.settings.dbrole
    if settings is None:
        raise DbRoleNotConfigured(
            f"`{target.label}` has no database role manager: set `dbrole.function` (the "
            f"role-manager Lambda's name or ARN) under `apps.{target.app}.environments."
            f"{target.env}` in the configuration."
        )
    return settings.function


def run(services: Services, *, target: Target, action: str) -> Outcome:
    """Invoke the role manager with `action` and wait for its result (never raises for AWS)."""
    function = function_of_or_raise(target)
    base = Outcome(action=action, label=target.label, function=function)
    try:
        invocation = awslambda.invoke(
            services.aws.get("lambda"), function=function, event={"action": action}
        )
    except awslambda.InvokeFailed as exc:
        log.warning("role manager %s of %s: %s", function, target.label, exc)
        if exc.code == "ResourceNotFoundException":
            failure = (
                f"the role manager `{function}` does not exist ({exc}): check "
                f"`dbrole.function` of `{target.label}`"
            )
        elif exc.code in ("AccessDeniedException", "AccessDenied"):
            failure = (
                f"opsbot may not invoke `{function}` ({exc}): its task role needs "
                "`lambda:InvokeFunction` on that function"
            )
        else:
            failure = f"could not invoke the role manager `{function}` ({exc})"
        return replace(base, failure=failure)
    if invocation.failure is not None:
        log.warning(
            "role manager %s of %s raised %s", function, target.label, invocation.failure.error_type
        )
        return replace(
            base, failure=f"the role manager `{function}` failed: {invocation.failure.text}"
        )
    result = ManagerResult.from_payload(invocation.payload)
    if result is None:
        return replace(
            base,
            failure=f"the role manager `{function}` answered something that is not a "
            "role-manager result (is `dbrole.function` the right function?)",
        )
    if result.refused:
        log.warning(
            "role manager refused function=%r target=%s errors=%r",
            function,
            target.label,
            [error[:300] for error in result.errors[:5]],
        )
    return replace(base, result=result)
