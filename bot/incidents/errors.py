"""Errors of the incidents domain; their message is what a person reads."""

from __future__ import annotations


class IncidentError(Exception):
    """Base for incident errors a handler turns into a reply."""


class IncidentNotFound(IncidentError):
    pass
