"""Errors of the database-role domain; the message is what a person reads."""

from __future__ import annotations


class DbRoleError(Exception):
    pass


class DbRoleNotConfigured(DbRoleError):
    """The environment names no role-manager function."""
