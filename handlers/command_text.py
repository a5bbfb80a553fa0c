"""The text of a slash command: its words, and answering with the usage when it does not parse.

And `slash_command`: a listener registered under the name the config gives the command.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from slack_bolt import Ack, BoltResponse

from bot.commands import COMMANDS, Naming
from bot.slack_text import clip, code
from handlers.routing import Routes

# Slack clients on phones turn straight quotes into curly ones.
QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})

# The most characters of a typed word an answer shows back: enough to recognise it.
ECHO_MAX = 80

CONTROL_REFUSAL = (
    "That command holds a control character (a NUL, an escape…), which opsbot does not "
    "take: type it again without it. Nothing was done."
)


class Usage(Exception):
    """The command does not parse; the message says how to write it."""


class Parsed(Protocol):
    @property
    def verb(self) -> str: ...


P = TypeVar("P", bound=Parsed)


def echoed(text: str) -> str:
    """Words a person typed, shown back in an answer: as code, clipped to `ECHO_MAX`."""
    return code(clip(text, ECHO_MAX))


def command_words(text: str) -> list[str]:
    """A command's words, quotes honoured."""
    text = (text or "").translate(QUOTES).strip()
    try:
        return shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        return text.split()


def parse_or_usage(ack: Ack, text: str | None, parse: Callable[[str], P], usage: str) -> P | None:
    """The parsed command; or None once `ack` has answered with the usage (mistyped, or help)."""
    try:
        parsed = parse(text or "")
    except Usage as exc:
        ack(text=f"{exc}\n\n{usage}")
        return None
    if parsed.verb == "help":
        ack(text=usage)
        return None
    return parsed


def _first_word(text: str) -> tuple[str, str]:
    words = (text or "").strip().split(None, 1)
    return (words[0].lower(), words[1] if len(words) > 1 else "") if words else ("", "")


def slash_command(
    routes: Routes, naming: Naming, name: str, *, when: Callable[[str], bool] | None = None
) -> Callable[[Callable[..., None]], Any]:
    """Register a listener of the table's command `name` under the name Slack gives it.

    In the `single` style all commands are one Slack command: its first word picks
    the listener (none: opsbot's own), which sees the text after that word.
    `when`: the listener only takes the command when its text (as it sees it) passes.
    """
    slack_name = naming.slack_name(name)
    single = naming.style == "single"
    selector = naming.selector(name) if single else None
    others = {s for c in COMMANDS if (s := naming.selector(c.name)) is not None}

    def own_text(body: dict[str, Any]) -> str | None:
        """The text the listener sees; None when the command is another listener's."""
        text = str(body.get("text") or "")
        if not single:
            return text
        first, rest = _first_word(text)
        if selector is None:
            return None if first in others else text
        return rest if first == selector else None

    def picked(body: dict[str, Any]) -> bool:
        text = own_text(body)
        return text is not None and (when is None or when(text))

    def after_selector(body: dict[str, Any]) -> None:
        if selector is not None:
            body["text"] = _first_word(str(body.get("text") or ""))[1]

    if not single:
        return routes.command(slack_name, matchers=[picked] if when else [])
    return routes.command(slack_name, matchers=[picked], prepare=after_selector)


def as_named(naming: Naming, answer: BoltResponse) -> BoltResponse:
    """Bolt's answer to Slack with the commands it mentions named as this workspace types them.

    Texts are written with the table's names (`/deploy history …`); this is where an
    acknowledgement leaves for Slack, whichever way it came (HTTP or Socket Mode). A
    JSON answer has its display texts named, not its values (`Naming.named_body`).
    """
    if naming.is_default or not isinstance(answer.body, str):
        return answer
    try:
        parsed = json.loads(answer.body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        answer.body = json.dumps(naming.named_body(parsed))
    else:
        answer.body = naming.named(answer.body)
    return answer
