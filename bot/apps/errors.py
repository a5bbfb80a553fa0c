"""Errors of the app registry; the message is what a person reads."""

from __future__ import annotations


class AppError(Exception):
    pass


class AppNotFound(AppError):
    pass


class NotAllowed(AppError):
    """Someone lacks a right; `right` names it as a refusal labels it ("being a deployer of
    an app environment"), None where the raiser does not say."""

    def __init__(self, message: str, *, right: str | None = None) -> None:
        super().__init__(message)
        self.right = right


class RightUnverifiable(NotAllowed):
    """Whether someone may act could not be checked (Slack could not say who is in a group).

    Refused all the same (rights fail closed), but it says so: nobody was found
    lacking the right, and the same request may go through once Slack answers.
    `right` is the right that could not be checked: none is missing.
    """

    def __init__(self, message: str, *, reason: str, right: str | None = None) -> None:
        super().__init__(message, right=right)
        self.reason = reason  # what Slack said, e.g. "Slack answered `ratelimited`"
