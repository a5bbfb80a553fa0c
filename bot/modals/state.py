"""A submitted view's state read back against its form, every value checked as hostile input.

Slack sends `view.state.values` as `{block_id: {action_id: {type, value |
selected_option}}}`. Whatever arrives is checked against what the form
offered: a value of the wrong type, a choice the form did not offer, a search
value that is no tag or flag name, text longer than the field allows. Every
problem is named on its own field (FieldErrors), and nothing is acted on.
"""

from __future__ import annotations

import re
from typing import Any

from bot.modals.errors import FieldErrors
from bot.modals.forms import LONG_TEXT, SEARCH, SEARCH_VALUE, SELECT, TEXT, Field, Form
from bot.typed import CONTROL

_SEARCH = re.compile(SEARCH_VALUE)
ELEMENT_TYPES = {
    SELECT: "static_select",
    SEARCH: "external_select",
    TEXT: "plain_text_input",
    LONG_TEXT: "plain_text_input",
}


def _selected(entry: dict[str, Any]) -> Any:
    chosen = entry.get("selected_option")
    if chosen is None:
        return None
    if not isinstance(chosen, dict):
        raise ValueError("not an option")
    return chosen.get("value")


def _value(field: Field, entry: Any) -> str | None:
    """The field's value (None: left empty); ValueError says what is wrong with it."""
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise ValueError("not a value Slack sends")
    expected = ELEMENT_TYPES[field.kind]
    if entry.get("type") not in (None, expected):
        raise ValueError("not a value Slack sends")
    raw = _selected(entry) if field.kind in (SELECT, SEARCH) else entry.get("value")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("not text")
    if len(raw) > field.max_length:
        raise ValueError(f"longer than {field.max_length} characters")
    if field.kind == SELECT:
        if raw not in {choice.value for choice in field.choices}:
            raise ValueError("not one of the choices offered")
        return raw
    if field.kind == SEARCH:
        if not _SEARCH.fullmatch(raw):
            raise ValueError("not one of the choices offered")
        return raw
    value = raw.strip()
    if CONTROL.search(value if field.kind == LONG_TEXT else value.replace("\n", "\x00")):
        raise ValueError("contains control characters")
    return value or None


def read_filled(form: Form, state: Any) -> dict[str, str]:
    """The fields filled in and valid so far (a search reads what else was chosen)."""
    values = state.get("values") if isinstance(state, dict) else None
    filled: dict[str, str] = {}
    for field in form.fields:
        block = values.get(field.name) if isinstance(values, dict) else None
        entry = block.get(field.name) if isinstance(block, dict) else None
        try:
            value = _value(field, entry)
        except ValueError:
            continue
        if value is not None:
            filled[field.name] = value
    return filled


def read(form: Form, state: Any) -> dict[str, str | None]:
    """Each field's value by name; FieldErrors when any value is wrong or a required one missing."""
    values = state.get("values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        raise FieldErrors({form.first: "The form arrived without its values: open it again."})
    read_values: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for field in form.fields:
        block = values.get(field.name)
        entry = block.get(field.name) if isinstance(block, dict) else None
        try:
            value = _value(field, entry)
        except ValueError as exc:
            errors[field.name] = f"{field.label}: {exc}."
            continue
        if value is None and not field.optional:
            errors[field.name] = f"{field.label} is required."
            continue
        read_values[field.name] = value
    if errors:
        raise FieldErrors(errors)
    return read_values
