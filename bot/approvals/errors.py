"""Errors of pending actions; the message is what the person who clicked reads."""

from __future__ import annotations

from bot.apps.errors import NotAllowed


class ApprovalError(Exception):
    pass


class ActionNotFound(ApprovalError):
    pass


class ClickRefused(ApprovalError):
    """This click is not allowed (not yours to confirm, self-approval, already decided...)."""


class ClickUnverifiable(ClickRefused):
    """Not counted, because a right it needs could not be checked (Slack did not answer).

    `reason` is what Slack said; the click may be made again once it answers.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class ActionFailed(ApprovalError):
    """The action ran and did not succeed; raised by a kind's `execute`.

    Raised from an error with a `said` (RequesterRightLost, dbroles' RefusedAtRun),
    the request's thread tells the requester that (see `flows.told_requester`).
    """


class RequesterRightLost(NotAllowed):
    """The requester of a request that waited for clicks lost the right it needs.

    The message is for whoever clicked last ("<@alice>, who asked, may no
    longer ..."); `said` is for the requester, in the request's thread, without
    the "Allowed:" list whose mentions would ping everyone in it.
    """

    def __init__(self, message: str, *, said: str) -> None:
        super().__init__(message)
        self.said = said


class ClicksLapsed(ActionFailed):
    """When it came to run, someone whose click it counted no longer has the right to it."""

    def __init__(self, message: str, *, lapsed: list[dict[str, str]]) -> None:
        super().__init__(message)
        # One {"user", "decision", "reason"} per click that no longer counts.
        self.lapsed = lapsed


class ClicksUnverifiable(ActionFailed):
    """When it came to run, someone's right to their click could not be checked (Slack)."""

    def __init__(self, message: str, *, unverifiable: list[dict[str, str]]) -> None:
        super().__init__(message)
        # One {"user", "decision", "reason"} per click whose right could not be checked.
        self.unverifiable = unverifiable
