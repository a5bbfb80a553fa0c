"""Outside text made inert for Slack, and cut to Slack's limits.

Slack reads `&`, `<` and `>` as control characters in every text object
(https://api.slack.com/reference/surfaces/formatting#escaping): `<!channel>`
pings a channel, `<@U123>` a person, `<https://x|Runbook>` is a link whose
target does not show. Text from alarms, webhooks, AWS and people goes through
`escape` (or `code`, `code_block_text`, `keep_mentions`) before it is put into
a message; the mentions and links opsbot builds itself from verified ids,
configuration and known hosts are the only markup left live. Formatting
characters (`*`, `_`, `~`) are left alone: at worst they make text bold.

`clip` cuts any rendered text to a limit without splitting an entity
(`&amp;`) or one of opsbot's own `<...>` sequences in half.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

# Slack's Block Kit limits (characters).
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
CONTEXT_MAX = 2000
BUTTON_MAX = 75
TEXT_MAX = 3000  # the top-level `text` opsbot sends: the notification a phone shows
ANSWER_MAX = 8000  # an answer without blocks, kept readable
MESSAGE_MAX = 40_000  # Slack cuts a message past this
BLOCKS_MAX = 50
URL_MAX = 3000  # a button's url
# What the blocks of one message may hold in all, with room for the top-level text.
MESSAGE_BUDGET = MESSAGE_MAX - TEXT_MAX - 1000

ELLIPSIS = "…"
ZERO_WIDTH_SPACE = "\u200b"

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_CONTROL = re.compile("[&<>]")
_CHARACTERS = {entity: character for character, entity in _ENTITIES.items()}
_ENTITY_NAMED = re.compile("&(?:amp|lt|gt);")
# Bare broadcast words: Slack's automatic parsing ("verbatim": false) may read them.
_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
_ENTITY_AT = re.compile(r"&#?[A-Za-z0-9]{1,10};")
# The mentions opsbot builds: a user, a user group (from configuration), a channel.
_MENTION = re.compile(
    r"<@[UW][A-Z0-9]+>"
    r"|<!subteam\^[A-Z0-9]+(?:\|@?[^<>|&\s]{1,80})?>"
    r"|<#[CG][A-Z0-9]+(?:\|[^<>|&\s]{1,80})?>"
    r"|&(?:amp|lt|gt);"
)
_BACKTICK_PAIR = re.compile(r"`(?=`)")


# The AWS consoles opsbot links to, by partition: a link elsewhere is not made.
CONSOLE_HOSTS = {
    "aws": "console.aws.amazon.com",
    "aws-cn": "console.amazonaws.cn",
    "aws-us-gov": "console.amazonaws-us-gov.com",
}


def entities(text: object) -> str:
    """`text` with `&`, `<` and `>` as the entities Slack shows as those characters."""
    return _CONTROL.sub(lambda m: _ENTITIES[m.group()], str(text))


def unescape(text: str) -> str:
    """The characters behind `&amp;`, `&lt;` and `&gt;`, decoded once: for text leaving Slack."""
    return _ENTITY_NAMED.sub(lambda m: _CHARACTERS[m.group()], text)


def escape(text: object) -> str:
    """Outside text, inert in mrkdwn and plain_text: no mention, hidden link or date can
    come of it.

    `&`, `<`, `>` become entities; a bare `@here`, `@channel` or `@everyone`
    gets a zero-width space after its `@`. A bare URL stays as written, and Slack
    makes it clickable: its link shows exactly the host it goes to, never other text.
    """
    return _BROADCAST.sub(f"@{ZERO_WIDTH_SPACE}\\1", entities(text))


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut.

    The cut never falls inside an entity (`&amp;`) nor inside a `<...>`
    sequence, so escaped text stays escaped and opsbot's own mentions and
    links stay whole or go entirely.
    """
    if len(text) <= limit:
        return text
    if limit < 1:
        return ""
    kept = text[: limit - 1]
    amp = kept.rfind("&")
    if amp != -1 and ";" not in kept[amp:] and _ENTITY_AT.match(text, amp):
        kept = kept[:amp]
    opening = kept.rfind("<")
    if opening != -1 and ">" not in kept[opening:]:
        kept = kept[:opening]
    return kept + ELLIPSIS


def inert(text: object, limit: int) -> str:
    """`escape` then `clip`: outside text ready for a text object of `limit` characters."""
    return clip(escape(text), limit)


def code(text: object) -> str:
    """Outside text as an inline code span it cannot end early.

    A backtick would close the span, so each becomes U+02CB (a modifier letter
    that looks alike); a newline becomes a space.
    """
    shown = entities(text).replace("`", "\u02cb").replace("\r", " ").replace("\n", " ")
    return f"`{shown}`"


def code_block_text(text: object) -> str:
    """Text that can sit inside a ``` code block without ending it.

    `&`, `<`, `>` become entities (Slack shows them as the characters inside
    code too); no two backticks stay adjacent, so no ``` can form.
    """
    return _BACKTICK_PAIR.sub(f"`{ZERO_WIDTH_SPACE}", entities(text))


def keep_mentions(text: object) -> str:
    """Text opsbot composed from its own mentions and outside words.

    User mentions (`<@U123>`), user-group mentions (`<!subteam^S123>`),
    channel links (`<#C123>`) and entities already in place stay as they
    are; everything else is escaped. Use it only for text opsbot composed
    with mentions it built from verified ids (a person's display, a
    reminder's on-call list): in text from outside, a user mention is the
    attacker's too, and `escape` is the function to use.
    """
    value = str(text)
    out: list[str] = []
    position = 0
    for match in _MENTION.finditer(value):
        out.append(escape(value[position : match.start()]))
        out.append(match.group())
        position = match.end()
    out.append(escape(value[position:]))
    return "".join(out)


def url_on(url: object, hosts: Iterable[str]) -> str | None:
    """`url` when it is an https URL on one of `hosts` (or a subdomain of one), else None.

    A URL Slack could misread in `<url|text>` (with `|`, `<`, `>`, spaces or
    control characters), one with credentials or a port, or one longer than a
    button's url allows, is None too.
    """
    if not isinstance(url, str) or not url or len(url) > URL_MAX:
        return None
    if any(c in "<>|\\" or ord(c) <= 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if parts.scheme.lower() != "https" or not host or parts.username or parts.password:
        return None
    if port is not None or not host.isascii():
        return None
    if any(host == known or host.endswith("." + known) for known in hosts):
        return url
    return None


def link(url: object, label: object, *, hosts: Iterable[str]) -> str:
    """`<url|label>` when `url` is on one of `hosts`; otherwise the label as text.

    The label is outside text and is escaped either way.
    """
    shown = escape(label)
    safe = url_on(url, hosts)
    return f"<{safe}|{shown}>" if safe else shown


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_text_length(v) for k, v in value.items() if k in ("text", "fields", "elements"))
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return 0


def fit_blocks(
    blocks: list[dict[str, Any]],
    *,
    max_blocks: int = BLOCKS_MAX,
    max_chars: int = MESSAGE_BUDGET,
) -> list[dict[str, Any]]:
    """The leading blocks that fit one message, with a note when some were left out."""
    kept: list[dict[str, Any]] = []
    used = 0
    for index, block in enumerate(blocks):
        size = _text_length(block)
        # The last block may take the last slot; before it, one stays free for the note.
        slots = max_blocks if index == len(blocks) - 1 else max_blocks - 1
        if len(kept) >= slots or used + size > max_chars:
            note = {"type": "mrkdwn", "text": "… (cut to fit Slack)"}
            return [*kept, {"type": "context", "elements": [note]}]
        kept.append(block)
        used += size
    return kept
