"""Errors of the database-role domain; the message is what a person reads."""

from __future__ import annotations

from typing import Any


class DbRoleError(Exception):
    pass


class DbRoleNotConfigured(DbRoleError):
    """The environment names no role-manager function."""


class RefusedAtRun(DbRoleError):
    """A request whose clicks were all in, refused when it came to run: nothing ran.

    `said` is what the request's thread tells the requester (no "Allowed:" list:
    its group mentions would ping a whole group); `detail` joins its audit line.
    """

    def __init__(self, message: str, *, said: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.said = said
        self.detail = dict(detail or {})
