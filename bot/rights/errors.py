"""Errors of the rights domain; the message is what the refused person reads."""

from __future__ import annotations


class RightMissing(Exception):
    """The person lacks a right; `right` names it (e.g. `respond` on route `prod`)."""

    def __init__(self, message: str, *, right: str) -> None:
        super().__init__(message)
        self.right = right


class TokenRefused(RightMissing):
    """A GitHub OIDC token that names nobody: the CLI has no identity, so no right."""

    def __init__(self, message: str) -> None:
        super().__init__(message, right="a verified GitHub OIDC token")


class SlackFactsUnavailable(Exception):
    """Slack could not say who someone is or where they are: rights fail closed."""
