"""Running an environment's role manager: one synchronous Lambda invocation, parsed.

An outcome's failure is mrkdwn: AWS's and the function's words in it are escaped.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from bot.adapters import awslambda
from bot.adapters.aws import may_have_been_done
from bot.apps.registry import Target
from bot.dbroles.errors import DbRoleNotConfigured
from bot.dbroles.models import MANAGE, ManagerResult, Outcome
from bot.slack_text import code, escape

if TYPE_CHECKING:
    from bot.apps.services import Services

log = logging.getLogger(__name__)


def function_of_or_raise(target: Target) -> str:
    """The environment's role-manager function, or DbRoleNotConfigured saying what to set."""
    settings = target.settings.dbrole
    if settings is None:
        raise DbRoleNotConfigured(
            f"{code(target.label)} has no database role manager: set `dbrole.function` (the "
            "role-manager Lambda's name or ARN) under "
            f"{code(f'apps.{target.app}.environments.{target.env}')} in the configuration."
        )
    return settings.function


def _may_have_run(exc: awslambda.InvokeFailed) -> bool:
    """Whether the invocation's answer was lost rather than refused (see `may_have_been_done`)."""
    return exc.__cause__ is not None and may_have_been_done(exc.__cause__)


# Lambda's error types for a function whose code could not be loaded: the handler never
# started, so nothing ran. Every other function error of the role manager (a timeout,
# the runtime's exit, anything raised around its handler's own try) may come after its
# transaction committed: the handler answers its own failures as a result, never raises.
NOT_STARTED_ERRORS = frozenset(
    {
        "Runtime.ImportModuleError",
        "Runtime.HandlerNotFound",
        "Runtime.MalformedHandlerName",
        "Runtime.UserCodeSyntaxError",
    }
)


def run(services: Services, *, target: Target, action: str) -> Outcome:
    """Invoke the role manager with `action` and wait for its result (never raises for AWS).

    `manage` is never retried after a lost answer (a read that timed out, a 5xx):
    a retry would run it again, or be throttled by the function's reserved
    concurrency while the first run goes on. A lost answer is said as such: it may
    have run. Only a throttled invocation, which did not run (another invocation
    held the function's one slot), is tried again, after a short pause
    (`awslambda.invoke`). `check` changes nothing and is retried as any call too.
    A `manage` that ended in a function error other than its code failing to load (a
    timeout, the runtime's exit) is said as unanswered too: it may have committed.
    """
    function = function_of_or_raise(target)
    base = Outcome(action=action, label=target.label, function=function)
    client = services.aws.get("lambda", retry=action != MANAGE)
    try:
        invocation = awslambda.invoke(client, function=function, event={"action": action})
    except awslambda.InvokeFailed as exc:
        log.warning("role manager %r of %s: %r", function, target.label, str(exc))
        said = escape(exc)
        if action == MANAGE and _may_have_run(exc):
            failure = (
                f"the role manager {code(function)} may have run, but its answer was lost "
                f"({said}): run {code(f'/dbrole check {target.app} {target.env}')} to see "
                "where the roles stand"
            )
            return replace(base, failure=failure, unanswered=True)
        if exc.code == "ResourceNotFoundException":
            failure = (
                f"the role manager {code(function)} does not exist ({said}): check "
                f"`dbrole.function` of {code(target.label)}"
            )
        elif exc.throttled:
            failure = (
                f"the role manager {code(function)} was throttled on every try ({said}), so "
                "it did not run: another run of it may hold its one slot; try again in a minute"
            )
        elif exc.throttled_last:
            # A check's client retries any failure: the last try was throttled, an earlier
            # one may have run it (a check changes nothing).
            failure = (
                f"the role manager {code(function)} was throttled ({said}): another run of "
                "it may hold its one slot; try again in a minute"
            )
        elif exc.code in ("AccessDeniedException", "AccessDenied"):
            failure = (
                f"opsbot may not invoke {code(function)} ({said}): its task role needs "
                "`lambda:InvokeFunction` on that function"
            )
        else:
            failure = f"could not invoke the role manager {code(function)} ({said})"
        return replace(base, failure=failure)
    if invocation.failure is not None:
        log.warning(
            "role manager %r of %s raised %r",
            function,
            target.label,
            invocation.failure.error_type[:200],
        )
        said = escape(invocation.failure.text)
        if action == MANAGE and invocation.failure.error_type not in NOT_STARTED_ERRORS:
            failure = (
                f"the role manager {code(function)} may have run, but it ended without its "
                f"answer ({said}): run {code(f'/dbrole check {target.app} {target.env}')} to "
                "see where the roles stand"
            )
            return replace(base, failure=failure, unanswered=True)
        return replace(base, failure=f"the role manager {code(function)} failed: {said}")
    result = ManagerResult.from_payload(invocation.payload)
    if result is None:
        return replace(
            base,
            failure=f"the role manager {code(function)} answered something that is not a "
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
