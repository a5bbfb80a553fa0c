"""Errors of the deploys domain; the message is what a person reads, as Slack mrkdwn.

Outside words in a message (a tag, an AWS error) are escaped where it is composed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.adapters.aws import AWS_ERRORS, describe_error, error_code, may_have_been_done
from bot.adapters.ecs import ContainerNotFound, ServiceNotFound
from bot.slack_text import escape


class DeployError(Exception):
    """Base for deploy errors a handler (or the CLI) turns into an answer."""


class DeployRefused(DeployError):
    """A check said no: a missing tag, a scan, a freeze, a lock, nothing to do..."""


class DeployFailed(DeployError):
    """AWS refused or failed while the deploy was being made.

    `code` is AWS's error code (or botocore's error class); `unanswered` says AWS
    may have done what it was asked all the same (a lost answer, not a refusal).
    """

    def __init__(self, message: str, *, code: str | None = None, unanswered: bool = False):
        super().__init__(message)
        self.code = code
        self.unanswered = unanswered


def failure_code(exc: BaseException) -> str:
    """The AWS error code behind a failure (wrapped or not), for logs and the audit; "-" if none."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DeployFailed) and seen.code:
            return seen.code
        if isinstance(seen, AWS_ERRORS):
            return error_code(seen) or type(seen).__name__
        seen = seen.__cause__
    return "-"


class DeploymentNotFound(DeployError):
    pass


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn an AWS failure into a DeployFailed that says what was being done."""
    try:
        yield
    except (ServiceNotFound, ContainerNotFound) as exc:
        raise DeployRefused(f"{exc}: check the app's settings in the configuration.") from exc
    except AWS_ERRORS as exc:
        unanswered = may_have_been_done(exc)
        said = "failed to" if unanswered else "refused to"
        raise DeployFailed(
            f"AWS {said} {what}: {escape(describe_error(exc))}",
            code=error_code(exc) or type(exc).__name__,
            unanswered=unanswered,
        ) from exc
