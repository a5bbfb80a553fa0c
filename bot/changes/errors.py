"""Why an undo clicked on an incident's message did not run."""

from __future__ import annotations


class UndoRefused(Exception):
    """The message a person reads: nothing was changed."""

    outcome = "refused"  # as audited and counted


class UndoFailed(UndoRefused):
    """The undo was started and AWS refused or failed it (or its answer was lost).

    Answered to the clicker as a refusal is (they read what AWS said), but recorded
    and counted as `failed`: it is not a gate that said no.
    """

    outcome = "failed"


class UndoUnknown(UndoRefused):
    """The bot failed after the undo was submitted: part of it may have been done.

    Answered like a refusal (the words say what opsbot's records show), recorded
    and counted as `unknown`.
    """

    outcome = "unknown"


class QuestionRefused(Exception):
    """A Continue or Cancel that does nothing (answered already, or not a question of ours)."""
