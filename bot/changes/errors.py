"""Why an undo clicked on an incident's message did not run."""

from __future__ import annotations


class UndoRefused(Exception):
    """The message a person reads: nothing was changed."""


class QuestionRefused(Exception):
    """A Continue or Cancel that does nothing (answered already, or not a question of ours)."""
