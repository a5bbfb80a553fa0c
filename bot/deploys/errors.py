"""Errors of the deploys domain; the message is what a person reads, as Slack mrkdwn.

Outside words in a message (a tag, an AWS error) are escaped where it is composed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.adapters.aws import AWS_ERRORS, describe_error
from bot.adapters.ecs import ContainerNotFound, ServiceNotFound
from bot.slack_text import escape


class DeployError(Exception):
    """Base for deploy errors a handler (or the CLI) turns into an answer."""


class DeployRefused(DeployError):
    """A check said no: a missing tag, a scan, a freeze, a lock, nothing to do..."""


class DeployFailed(DeployError):
    """AWS refused or failed while the deploy was being made."""


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
        raise DeployFailed(f"AWS refused to {what}: {escape(describe_error(exc))}") from exc
