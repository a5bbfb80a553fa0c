"""Block Kit for who is on call: pure functions of a report, testable as data."""

from __future__ import annotations

from typing import Any

from bot.incidents.render import clip
from bot.oncall.service import Level, OnCallReport, Shift
from bot.slack_dates import slack_date

MAX_POLICIES = 40


def _shift(shift: Shift, *, upcoming: bool) -> str:
    text = shift.person
    if shift.schedule:
        text += f" ({shift.schedule})"
    if upcoming and shift.start is not None:
        text += f" from {slack_date(shift.start)}"
    elif not upcoming:
        text += f" until {slack_date(shift.end)}" if shift.end else " (always on call)"
    return text


def _level(level: Level) -> str:
    now = ", ".join(_shift(s, upcoming=False) for s in level.now) or "_nobody_"
    line = f"• *Level {level.number}*: {now}"
    if level.next:
        line += " · next: " + ", ".join(_shift(s, upcoming=True) for s in level.next)
    return line


def oncall_message(report: OnCallReport, *, heading: str | None = None) -> dict[str, Any]:
    """`/oncall`: per escalation policy, who is on call at each level now and who is next."""
    title = heading or f":telephone_receiver: On call for *{report.target.title}*"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(title, 3000)}}
    ]
    if not report.policies:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Nobody is on call there right now."},
            }
        )
    for policy in report.policies[:MAX_POLICIES]:
        lines = [f"*{policy.name}*", *(_level(level) for level in policy.levels)]
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip("\n".join(lines), 3000)}}
        )
    if len(report.policies) > MAX_POLICIES:
        more = len(report.policies) - MAX_POLICIES
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"… and {more} more escalation policies"}],
            }
        )
    first = next((p for p in report.policies if p.levels and p.levels[0].now), None)
    summary = f"On call for {report.target.title}: " + (
        ", ".join(s.person for s in first.levels[0].now) if first else "nobody"
    )
    return {"text": clip(summary, 3000), "blocks": blocks}


def handoff_message(report: OnCallReport) -> dict[str, Any]:
    heading = (
        f":arrows_counterclockwise: *Shift handoff* for *{report.target.title}* "
        f"({slack_date(report.at)}): on call for the next shift"
    )
    return oncall_message(report, heading=heading)


def unavailable_message(title: str, why: str) -> dict[str, Any]:
    text = f":warning: Cannot tell who is on call for *{title}*: {why}"
    return {"text": text, "blocks": None}
