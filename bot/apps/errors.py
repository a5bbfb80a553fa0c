"""Errors of the app registry; the message is what a person reads."""

from __future__ import annotations


class AppError(Exception):
    pass


class AppNotFound(AppError):
    pass


class NotAllowed(AppError):
    pass


class RightUnverifiable(NotAllowed):
    """Whether someone may act could not be checked (Slack could not say who is in a group).

    Refused all the same (rights fail closed), but it says so: nobody was found
    lacking the right, and the same request may go through once Slack answers.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # what Slack said, e.g. "Slack answered `ratelimited`"
