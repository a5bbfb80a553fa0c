"""Errors of the modals domain: what is wrong with a submission, field by field."""

from __future__ import annotations

from bot.slack_text import escape


class FieldErrors(Exception):
    """A submission that cannot be acted on; `errors` maps a field's name to what to fix.

    `errors` are plain text, shown under the fields. `message` is the same for a
    message (mrkdwn), when the form's wait is over: a domain's own answer, whose
    outside words are escaped; without it, the plain texts are escaped for one.
    """

    def __init__(self, errors: dict[str, str], *, message: str | None = None) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in errors.items()))
        self.errors = errors
        self.message = message

    def mrkdwn(self) -> str:
        """What to fix as a message: never the plain texts as they are (`<!channel>` would ping)."""
        if self.message is not None:
            return self.message
        return "\n".join(escape(text) for text in dict.fromkeys(self.errors.values()))
