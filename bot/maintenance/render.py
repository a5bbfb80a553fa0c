"""What maintenance windows look like in Slack: one line each, a listing with End buttons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.maintenance.models import ROUTE, MaintenanceWindow
from bot.slack_dates import slack_date
from bot.slack_text import BLOCKS_MAX, code, fit_blocks, inert

END = "maintenance_end"  # the End button's action_id; its value is the window's id
REASON_SHOWN = 200
# Windows one listing shows: its head and the note on those left out take the other blocks.
LISTED = BLOCKS_MAX - 2


def target_text(window: MaintenanceWindow) -> str:
    what = "route" if window.kind == ROUTE else "alarms"
    return f"{what} {code(window.pattern)}"


def is_overdue(window: MaintenanceWindow, now: datetime) -> bool:
    """Past its end and not closed: its end job is late or gave up, and the alarms it held
    wait for its end to be paged."""
    return window.ended_at is None and window.ends_at <= now


def window_line(window: MaintenanceWindow, *, now: datetime) -> str:
    """`#3 alarms `prod-db-*` (reason, by @x) until <date>`; planned windows say from when,
    overdue ones that their end is still to be handled."""
    reason = inert(window.reason, REASON_SHOWN)
    when = f"until {slack_date(window.ends_at)}"
    if window.is_planned(now):
        when = f"from {slack_date(window.starts_at)} {when}"
    elif is_overdue(window, now):
        when = (
            f"was due to end {slack_date(window.ends_at)}: not closed yet, alarms it held "
            "are paged when it is ended"
        )
    return f"#{window.id} {target_text(window)} ({reason}, by <@{window.created_by}>) {when}"


def held_line(window: MaintenanceWindow) -> str:
    """The line an alarm held by a window carries in its thread and message."""
    reason = inert(window.reason, REASON_SHOWN)
    return (
        f":construction: In maintenance window #{window.id} ({reason}, by "
        f"<@{window.created_by}>, until {slack_date(window.ends_at)}): recorded, not paged."
    )


def end_button(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": END,
        "text": {"type": "plain_text", "text": "End now"},
        "value": str(window.id),
        "confirm": {
            "title": {"type": "plain_text", "text": f"End window #{window.id}?"},
            "text": {
                "type": "plain_text",
                "text": "Alarms it holds that still fire are paged at once.",
            },
            "confirm": {"type": "plain_text", "text": "End it"},
            "deny": {"type": "plain_text", "text": "Keep it"},
        },
    }


def window_blocks(
    windows: list[MaintenanceWindow], *, now: datetime, may_end: Callable[[MaintenanceWindow], bool]
) -> list[dict[str, Any]]:
    """A section per window, with an End button where `may_end` says the viewer may end it."""
    blocks: list[dict[str, Any]] = []
    for window in windows:
        state = ":construction:" if window.is_active(now) else ":calendar:"
        if is_overdue(window, now):
            state = ":warning:"
        block: dict[str, Any] = {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"{state} {window_line(window, now=now)}"},
        }
        if may_end(window):
            block["accessory"] = end_button(window)
        blocks.append(block)
    return blocks


def listing(
    windows: list[MaintenanceWindow],
    *,
    now: datetime,
    may_end: Callable[[MaintenanceWindow], bool],
    total: int | None = None,
) -> dict[str, Any]:
    """`/incident silences`: windows in force, planned and overdue, the first `LISTED` of
    `windows` (soonest start first); `total`: how many there are, when `windows` are only
    the first of them. A note says how many are not shown."""
    total = max(total or 0, len(windows))
    if not total:
        return {"text": "No maintenance window is in force or planned.", "blocks": None}
    text = f"Maintenance windows in force or planned: {total}"
    shown = windows[:LISTED]
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{text}*"}},
        *window_blocks(shown, now=now, may_end=may_end),
    ]
    if total > len(shown):
        more = total - len(shown)
        note = (
            f"{more} more {'window is' if more == 1 else 'windows are'} not shown: one message "
            f"lists the {len(shown)} that start soonest."
        )
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return {"text": text, "blocks": fit_blocks(blocks)}
