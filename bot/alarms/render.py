"""Block Kit for SNS messages that are not CloudWatch alarms, and for alarm groups.

The subject and the body are whatever was published to the topic, and alarm
names are whatever the alarm's owner typed: all are shown as inert text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.incidents.render import STATE_ICON, STATE_WORD
from bot.slack_dates import slack_date
from bot.slack_text import (
    CONTEXT_MAX,
    HEADER_MAX,
    SECTION_MAX,
    TEXT_MAX,
    clip,
    code,
    escape,
    fit_blocks,
    inert,
    keep_mentions,
)


def _text(kind: str, text: str) -> dict[str, str]:
    return {"type": kind, "text": text}


def notice_message(*, subject: str | None, body: str, topic_arn: str | None) -> dict[str, Any]:
    title = subject or "Notification"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _text("plain_text", inert(f":mega: {title}", HEADER_MAX))},
        {"type": "section", "text": _text("mrkdwn", inert(body or "(empty)", SECTION_MAX))},
    ]
    if topic_arn:
        source = clip(f"from {code(topic_arn)}", CONTEXT_MAX)
        blocks.append({"type": "context", "elements": [_text("mrkdwn", source)]})
    return {"text": inert(f"{title}: {body}", TEXT_MAX), "blocks": blocks}


def refused_alarm_message(
    *, name: str, state: str, account: str, carrier: str | None, carrier_account: str | None
) -> dict[str, Any]:
    """The notice for an alarm that what carried it may not bring: nothing was opened,
    resolved or paged, and the operator learns which setting would accept it."""
    came_by = (
        f"{code(carrier)} (account {code(carrier_account or 'none')})" if carrier else "no topic"
    )
    title = f":no_entry: Alarm not applied: {name}"
    detail = (
        f"{escape(state)} of account {code(account or 'none')} came by {came_by}, which may"
        " not carry that account's alarms. Nothing was opened, resolved or paged. If the"
        " topic is meant to carry them, name the account for it in"
        " `OPSBOT_SNS_TOPIC_ACCOUNTS`."
    )
    return {
        "text": inert(
            f"Alarm not applied: {name} ({state}) of account {account or 'none'}", TEXT_MAX
        ),
        "blocks": [
            {"type": "header", "text": _text("plain_text", inert(title, HEADER_MAX))},
            {"type": "section", "text": _text("mrkdwn", clip(detail, SECTION_MAX))},
        ],
    }


@dataclass(frozen=True)
class GroupLine:
    """One alarm listed in a group's message."""

    incident_id: int
    title: str
    state: str  # the alarm's state (ALARM, OK, INSUFFICIENT_DATA)
    is_open: bool
    acknowledged_by: str | None
    threaded: bool  # its own message is in the group's thread


def _group_line(line: GroupLine) -> str:
    icon, word = STATE_ICON.get(line.state, ""), STATE_WORD.get(line.state, line.state)
    where = "in this thread" if line.threaded else "in the channel"
    text = f"{icon} *{escape(word)}* {inert(line.title, 200)} · #{line.incident_id} ({where})"
    if line.is_open and line.acknowledged_by:
        text += f" · acknowledged by {keep_mentions(line.acknowledged_by)}"
    elif not line.is_open:
        text += " · resolved"
    return text


def _rank(line: GroupLine) -> int:
    """Alarms in ALARM first (resolved by hand or not: the header counts them), then the
    open ones in another state, then the resolved: when a storm is too long for one
    message, the lines cut are the ones nobody has to act on."""
    if line.state == "ALARM":
        return 0
    return 1 if line.is_open else 2


def _left_out_line(left_out: list[GroupLine]) -> str:
    firing = sum(1 for line in left_out if line.state == "ALARM")
    resolved = sum(1 for line in left_out if _rank(line) == 2)
    counts = f"{firing} in ALARM" + (f", {resolved} resolved" if resolved else "")
    return (
        f"… and {len(left_out)} more not listed, to fit Slack ({counts}): each has its own "
        "message in this thread or in the channel."
    )


def _sections(rows: list[str]) -> list[dict[str, Any]]:
    """Rows packed into as few sections as fit (SECTION_MAX characters each)."""
    sections: list[dict[str, Any]] = []
    chunk = ""
    for row in rows:
        row = clip(row, SECTION_MAX)
        if chunk and len(chunk) + 1 + len(row) > SECTION_MAX:
            sections.append({"type": "section", "text": _text("mrkdwn", chunk)})
            chunk = ""
        chunk = f"{chunk}\n{row}" if chunk else row
    if chunk:
        sections.append({"type": "section", "text": _text("mrkdwn", chunk)})
    return sections


def group_message(
    *, route_name: str, opened_at: datetime, lines: list[GroupLine]
) -> dict[str, Any]:
    """The parent message of alarms that opened together on one route, in their current
    states; each alarm's own message (with its buttons) is in its thread.

    Alarms in ALARM come first, then the other open ones, then the resolved, each in
    the order given (the order they joined), so an update moves only the lines whose
    state changed. What does not fit one message is left off the end and counted.
    """
    firing = sum(1 for line in lines if line.state == "ALARM")
    head = (
        f"{STATE_ICON['ALARM'] if firing else STATE_ICON['OK']} {len(lines)} alarms on "
        f"{route_name}, {firing} in ALARM"
    )
    ordered = sorted(lines, key=_rank)  # stable: join order within each rank
    rows = [_group_line(line) for line in ordered]
    note = (
        f"Opened together since {slack_date(opened_at)}. Each alarm has its own incident, "
        "page and buttons: its message is in this thread (or in the channel, for those "
        "posted before the group formed)."
    )

    def blocks_listing(shown: int) -> list[dict[str, Any]]:
        listed = rows[:shown]
        if shown < len(rows):
            listed = [*listed, _left_out_line(ordered[shown:])]
        return [
            {"type": "header", "text": _text("plain_text", inert(head, HEADER_MAX))},
            *_sections(listed),
            {"type": "context", "elements": [_text("mrkdwn", clip(note, CONTEXT_MAX))]},
        ]

    def fits(blocks: list[dict[str, Any]]) -> bool:
        return fit_blocks(blocks) == blocks

    blocks = blocks_listing(len(rows))
    if not fits(blocks):
        # The most leading rows that fit with the line counting the rest; 0 rows always do.
        low, high = 0, len(rows) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if fits(blocks_listing(middle)):
                low = middle
            else:
                high = middle - 1
        blocks = blocks_listing(low)
    return {"text": inert(head, TEXT_MAX), "blocks": fit_blocks(blocks)}
