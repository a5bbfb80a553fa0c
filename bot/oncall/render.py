"""Block Kit for who is on call: pure functions of a report, testable as data.

Policy, schedule and target names are PagerDuty's (or typed): shown inert. A
shift's person is already a mention or an escaped name (PeopleDirectory.display).
"""

from __future__ import annotations

from typing import Any

from bot.oncall.service import Level, OnCallReport, Shift
from bot.slack_dates import slack_date
from bot.slack_text import CONTEXT_MAX, SECTION_MAX, TEXT_MAX, clip, escape, inert

MAX_POLICIES = 40


def _shift(shift: Shift, *, upcoming: bool) -> str:
    text = shift.person
    if shift.schedule:
        text += f" ({inert(shift.schedule, 200)})"
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
    title = heading or f":telephone_receiver: On call for *{inert(report.target.title, 500)}*"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(title, SECTION_MAX)}}
    ]
    if not report.policies:
        blocks.append(
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Nobody is on call there right now."},
            }
        )
    for policy in report.policies[:MAX_POLICIES]:
        lines = [f"*{inert(policy.name, 500)}*", *(_level(level) for level in policy.levels)]
        text = clip("\n".join(lines), SECTION_MAX)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if len(report.policies) > MAX_POLICIES:
        more = len(report.policies) - MAX_POLICIES
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": clip(f"… and {more} more escalation policies", CONTEXT_MAX),
                    }
                ],
            }
        )
    first = next((p for p in report.policies if p.levels and p.levels[0].now), None)
    summary = f"On call for {escape(report.target.title)}: " + (
        ", ".join(s.person for s in first.levels[0].now) if first else "nobody"
    )
    return {"text": clip(summary, TEXT_MAX), "blocks": blocks}


def handoff_message(report: OnCallReport) -> dict[str, Any]:
    heading = (
        f":arrows_counterclockwise: *Shift handoff* for *{inert(report.target.title, 500)}* "
        f"({slack_date(report.at)}): on call for the next shift"
    )
    return oncall_message(report, heading=heading)


def unavailable_message(title: str, why: str) -> dict[str, Any]:
    """Why PagerDuty could not say: the title (perhaps typed) and PagerDuty's error, inert."""
    text = f":warning: Cannot tell who is on call for *{inert(title, 500)}*: {inert(why, 1000)}"
    return {"text": clip(text, TEXT_MAX), "blocks": None}
