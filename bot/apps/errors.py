"""Errors of the app registry; the message is what a person reads."""

from __future__ import annotations


class AppError(Exception):
    pass


class AppNotFound(AppError):
    pass


class NotAllowed(AppError):
    pass
