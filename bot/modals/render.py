"""A form as a Slack modal view, and a domain's mrkdwn answer as a field's plain-text error.

Pure functions of their arguments: the views can be tested as data. Outside
words (a tag, a flag's name) only ever reach a view as plain_text, which Slack
shows as typed.
"""

from __future__ import annotations

import re
from typing import Any

from bot.modals.forms import LONG_TEXT, SEARCH, SELECT, TEXT, Choice, Field, Form
from bot.slack_text import clip, unescape

# Slack's limits on a modal (Block Kit reference: views, input, select menus).
TITLE_MAX = 24
BUTTON_MAX = 24
LABEL_MAX = 2000
HINT_MAX = 2000
PLACEHOLDER_MAX = 150
OPTIONS_MAX = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
METADATA_MAX = 3000
INPUT_MAX = 3000
# A field's error is a line under the field, not a page.
ERROR_MAX = 300


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def option(choice: Choice) -> dict[str, Any]:
    """One option of a select menu (also what an `options` request answers with)."""
    rendered = {
        "text": _plain(choice.label, OPTION_TEXT_MAX),
        "value": choice.value[:OPTION_VALUE_MAX],
    }
    if choice.description:
        rendered["description"] = _plain(choice.description, OPTION_TEXT_MAX)
    return rendered


def _element(field: Field) -> dict[str, Any]:
    element: dict[str, Any] = {"action_id": field.name}
    if field.kind == SELECT:
        element["type"] = "static_select"
        element["options"] = [option(c) for c in field.choices[:OPTIONS_MAX]]
        initial = next((c for c in field.choices if c.value == field.initial), None)
        if initial is not None:
            element["initial_option"] = option(initial)
    elif field.kind == SEARCH:
        element["type"] = "external_select"
        element["min_query_length"] = 0
    elif field.kind in (TEXT, LONG_TEXT):
        element["type"] = "plain_text_input"
        element["multiline"] = field.kind == LONG_TEXT
        element["max_length"] = min(field.max_length, INPUT_MAX)
        if field.initial:
            element["initial_value"] = field.initial
    else:  # pragma: no cover - the kinds are ours
        raise ValueError(f"unknown field kind {field.kind!r}")
    if field.placeholder:
        element["placeholder"] = _plain(field.placeholder, PLACEHOLDER_MAX)
    return element


def _input(field: Field) -> dict[str, Any]:
    block: dict[str, Any] = {
        "type": "input",
        "block_id": field.name,
        "label": _plain(field.label, LABEL_MAX),
        "optional": field.optional,
        "element": _element(field),
    }
    if field.hint:
        block["hint"] = _plain(field.hint, HINT_MAX)
    return block


def view(form: Form, *, metadata: str = "") -> dict[str, Any]:
    """The modal view of `form`; `metadata` comes back in the submission (private_metadata)."""
    if len(metadata) > METADATA_MAX:
        raise ValueError("private_metadata is longer than Slack allows")
    blocks: list[dict[str, Any]] = []
    if form.intro:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": form.intro}})
    blocks.extend(_input(field) for field in form.fields)
    return {
        "type": "modal",
        "callback_id": form.callback_id,
        "title": _plain(form.title, TITLE_MAX),
        "submit": _plain(form.submit, BUTTON_MAX),
        "close": _plain("Cancel", BUTTON_MAX),
        "private_metadata": metadata,
        "blocks": blocks,
    }


_LABELLED = re.compile(r"<[^<>|]*\|([^<>]*)>")
_MENTION = re.compile(r"<[@#]([A-Z0-9]+)>")
_GROUP = re.compile(r"<!subteam\^([A-Z0-9]+)>")
_SPECIAL = re.compile(r"<!(here|channel|everyone)>")
_URL = re.compile(r"<([^<>|]*)>")


def plain_error(text: str) -> str:
    """A domain's mrkdwn answer as the plain text Slack shows under a field.

    Mentions become `@U123`, links their label, code spans and bold lose their
    marks, entities their escapes; the result is clipped to a line or two.
    """
    text = _LABELLED.sub(r"\1", text)
    text = _GROUP.sub(r"@\1", text)
    text = _MENTION.sub(lambda m: ("#" if m.group(0)[1] == "#" else "@") + m.group(1), text)
    text = _SPECIAL.sub(r"@\1", text)
    text = _URL.sub(r"\1", text)
    text = text.replace("`", "").replace("*", "")
    text = " ".join(unescape(text).split())
    return clip(text, ERROR_MAX)
