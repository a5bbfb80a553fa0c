"""Errors of the flags domain; the message is what a person reads, as Slack mrkdwn.

Outside words in a message (a flag's name, a value, an AWS error) are escaped
where it is composed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from bot.adapters.aws import AWS_ERRORS, describe_error
from bot.slack_text import escape


class FlagError(Exception):
    """Base for flag errors a handler turns into an answer."""

    message_is_mrkdwn = True  # built from escaped parts: shown as it is


class FlagRefused(FlagError):
    """A check said no: a wrong value, a busy environment, nothing to change..."""


class FlagNotFound(FlagRefused):
    """No such flag (the message lists the flags that exist)."""


class FlagConflict(FlagRefused):
    """Someone else changed the flags since they were read."""


class FlagFailed(FlagError):
    """AWS refused or failed while the change was being made."""


class FlagWriteUnknown(FlagFailed):
    """A write whose answer was lost, and no read settles whether it landed."""

    may_have_changed = True  # read by bot/deploys/restarts.py, which cannot know flags' errors


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    """Turn an AWS failure into a FlagFailed that says what was being done."""
    try:
        yield
    except AWS_ERRORS as exc:
        raise FlagFailed(f"AWS refused to {what}: {escape(describe_error(exc))}") from exc
