"""What Slack would make of a message: its text objects, and the Block Kit limits it breaks.

The Slack emulator stores what it is sent without judging it; these checks
stand in for the `invalid_blocks` / `msg_too_long` answers the real API gives.
"""

from __future__ import annotations

import re
from typing import Any

# Slack's limits (https://api.slack.com/reference/block-kit/blocks and .../block-elements).
LIMITS = {"header": 150, "section": 3000, "field": 2000, "context": 3000, "button": 75}

# The markup opsbot builds itself: mentions from verified ids and configuration, dates
# (`<!date^...>`, /oncall's times) and the placeholders of its usage texts (`<reason>`).
OPSBOT_MARKUP = re.compile(
    r"<@U0[A-Z]+>|<!subteam\^S0[A-Z]+>|<#C0[A-Z]+>"
    r"|<!date\^\d+\^\{date_short_pretty\} \{time(?:_secs)?\}\|[^<>|]+>"
    r"|<[a-z][a-z-]*>"
)
# A broadcast word Slack's automatic parsing may read as `<!here>`: `escape` puts a
# zero-width space after its `@`, so one found here came in unescaped. Code spans and
# blocks (`code`, `code_block_text`) are shown as they are, never parsed.
BARE_BROADCAST = re.compile(r"@(?:here|channel|everyone)\b", re.IGNORECASE)
CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)


def _dicts(value: Any) -> list[dict[str, Any]]:
    """Every dict inside a block structure, outermost first."""
    if isinstance(value, dict):
        return [value, *(d for item in value.values() for d in _dicts(item))]
    if isinstance(value, list):
        return [d for item in value for d in _dicts(item)]
    return []


def texts(text: str | None, blocks: list[dict[str, Any]] | None) -> list[str]:
    """Every text a message shows: the top-level text and each text object's."""
    found = [text] if text else []
    for item in _dicts(blocks or []):
        if item.get("type") in ("mrkdwn", "plain_text") and isinstance(item.get("text"), str):
            found.append(item["text"])
    return found


def live_markup(text: str | None, blocks: list[dict[str, Any]] | None) -> list[str]:
    """`<...>` sequences Slack would act on, other than the mentions opsbot builds,
    and bare broadcast words (`@here`) it may read as one."""
    return [
        m for t in texts(text, blocks) for m in re.findall(r"<[^>]*>?", OPSBOT_MARKUP.sub("", t))
    ] + bare_broadcasts(text, blocks)


def bare_broadcasts(text: str | None, blocks: list[dict[str, Any]] | None) -> list[str]:
    """`@here`, `@channel` and `@everyone` left bare, outside code, in any text shown."""
    return [
        m.group() for t in texts(text, blocks) for m in BARE_BROADCAST.finditer(CODE.sub("", t))
    ]


def urls(blocks: list[dict[str, Any]] | None) -> list[str]:
    """Every link target in the blocks: buttons' urls and `<url|text>` in text."""
    found = [d["url"] for d in _dicts(blocks or []) if isinstance(d.get("url"), str)]
    for text in texts(None, blocks):
        found += re.findall(r"<(https?://[^|>]*)", text)
    return found


def inert_problems(text: str | None, blocks: list[dict[str, Any]] | None) -> list[str]:
    """Live markup and broken limits together: empty when what Slack got is inert and fits."""
    return live_markup(text, blocks) + limit_problems(text, blocks)


def limit_problems(text: str | None, blocks: list[dict[str, Any]] | None) -> list[str]:
    """The Block Kit limits a message breaks (empty when Slack would take it)."""
    problems: list[str] = []

    def over(what: str, value: str, limit: int) -> None:
        if len(value) > limit:
            problems.append(f"{what}: {len(value)} > {limit}")
        if not value:
            problems.append(f"{what}: empty")

    if text is not None and len(text) > 40_000:
        problems.append(f"text: {len(text)} > 40000")
    blocks = blocks or []
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks > 50")
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            over("header", block["text"]["text"], LIMITS["header"])
        elif kind == "section":
            if "text" in block:
                over("section", block["text"]["text"], LIMITS["section"])
            fields = block.get("fields") or []
            if len(fields) > 10:
                problems.append(f"{len(fields)} fields > 10")
            for field in fields:
                over("field", field["text"], LIMITS["field"])
        elif kind == "context":
            if len(block["elements"]) > 10:
                problems.append("context: more than 10 elements")
            for element in block["elements"]:
                over("context", element["text"], LIMITS["context"])
        elif kind == "actions":
            for element in block["elements"]:
                if element["type"] == "button":
                    over("button", element["text"]["text"], LIMITS["button"])
                    if "url" in element:
                        over("button url", element["url"], 3000)
    if sum(len(t) for t in texts(text, blocks)) > 40_000:
        problems.append("the message is over 40,000 characters")
    return problems
