"""The text of a slash command: its words, and answering with the usage when it does not parse."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Protocol, TypeVar

from slack_bolt import Ack

# Slack clients on phones turn straight quotes into curly ones.
QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})


class Usage(Exception):
    """The command does not parse; the message says how to write it."""


class Parsed(Protocol):
    @property
    def verb(self) -> str: ...


P = TypeVar("P", bound=Parsed)


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
