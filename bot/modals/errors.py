"""Errors of the modals domain: what is wrong with a submission, field by field."""

from __future__ import annotations


class FieldErrors(Exception):
    """A submission that cannot be acted on; `errors` maps a field's name to what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {text}" for name, text in errors.items()))
        self.errors = errors
