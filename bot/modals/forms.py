"""What a modal asks for, as plain data: its fields, their kinds and their choices.

A `Form` is rendered to a Slack view (render.py) and is also what a submission
is checked against (state.py): a choice that was not offered is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

# The kinds of field.
SELECT = "select"  # static_select: the choices are in the view
SEARCH = "search"  # external_select: choices come from an `options` request, as typed
TEXT = "text"  # plain_text_input on one line
LONG_TEXT = "long_text"  # plain_text_input, multiline

# An option's value in a search field: ECR tags and flag names fit it.
SEARCH_VALUE = r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}"


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    description: str | None = None  # a second, greyed line under the label (plain text)


@dataclass(frozen=True)
class Field:
    """One input: `name` is its block_id and action_id."""

    name: str
    label: str
    kind: str
    choices: tuple[Choice, ...] = ()
    optional: bool = False
    max_length: int = 200
    hint: str | None = None
    placeholder: str | None = None
    initial: str | None = None  # a choice's value, or a text's initial value


@dataclass(frozen=True)
class Form:
    callback_id: str
    title: str  # Slack allows 24 characters
    submit: str
    fields: tuple[Field, ...]
    intro: str | None = None  # mrkdwn shown above the fields

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)

    @property
    def first(self) -> str:
        return self.fields[0].name
