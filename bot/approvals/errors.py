"""Errors of pending actions; the message is what the person who clicked reads."""

from __future__ import annotations


class ApprovalError(Exception):
    pass


class ActionNotFound(ApprovalError):
    pass


class ClickRefused(ApprovalError):
    """This click is not allowed (not yours to confirm, self-approval, already decided...)."""


class ActionFailed(ApprovalError):
    """The action ran and did not succeed; raised by a kind's `execute`."""


class ClicksLapsed(ActionFailed):
    """When it came to run, someone whose click it counted no longer has the right to it."""

    def __init__(self, message: str, *, lapsed: list[dict[str, str]]) -> None:
        super().__init__(message)
        # One {"user", "decision", "reason"} per click that no longer counts.
        self.lapsed = lapsed
