"""Errors of the on-call domain; the message is what a person reads."""

from __future__ import annotations


class OnCallError(Exception):
    pass
