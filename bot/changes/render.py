"""Block Kit for "Changes before this alarm": pure functions of a ChangesView.

Versions, flag names and flag values come from outside (ECR tags, AppConfig
documents, what people typed): `escape` makes them safe in mrkdwn, and it is
the one place to switch to a shared helper.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from bot.approvals.render import actor_text
from bot.changes.outside import FAILED, LOOKED, LOOKING, OutsideView, Seen
from bot.changes.service import ROLLBACK_UNDO, ChangeItem, ChangesView, Undo
from bot.incidents.render import clip, duration
from bot.slack_text import escape

UNDO = "incident_undo"  # action ids are UNDO + ":" + the change's key (handlers/changes.py)
UNDO_PATTERN = r"^incident_undo:(deploy|flag):[0-9]{1,12}$"
BUTTON_TEXT_MAX = 75
MAX_BUTTONS = 5
# The section's lines, opsbot's changes and deploys seen on ECS together (newest first):
# the rest are counted in "… and N more", and a section never outgrows Slack's 3,000.
MAX_LINES = 10
SECTION_MAX = 3000
_Dated = tuple[datetime, str, ChangeItem | None]  # a line; its change (None: seen on ECS)
ICONS = {"deploy": ":rocket:", "rollback": ":rewind:", "flag": ":triangular_flag_on_post:"}


def slack_date(moment: datetime) -> str:
    """`<!date^...>`: shown in each reader's own time zone, relative when it is recent."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def slack_time(moment: datetime) -> str:
    """`<!date^...>` as a time of day to the second, in each reader's own time zone."""
    fallback = moment.strftime("%H:%M:%S UTC")
    return f"<!date^{int(moment.timestamp())}^{{time_secs}}|{fallback}>"


def code(text: str) -> str:
    shown = escape(clip(text.replace("`", "'"), 120))
    return f"`{shown}`"


def undo_label(undo: Undo) -> str:
    """The button's words: `Roll back to 1.4.1`, `Turn apple_pay off again`."""
    if undo.kind == ROLLBACK_UNDO:
        return clip(f"Roll back to {undo.target_version}", BUTTON_TEXT_MAX)
    return clip(f"Turn {undo.flag} {undo.verb} again", BUTTON_TEXT_MAX)


def _what(item: ChangeItem) -> str:
    if item.kind == "flag":
        return f"Flag {code(item.subject)} {code(item.before or '?')} → {code(item.after or '?')}"
    if item.kind == "rollback":
        return f"Rollback to {code(item.subject)}"
    since = f" (from {code(item.before)})" if item.before else ""
    return f"Deploy {code(item.subject)}{since}"


def _line(item: ChangeItem) -> str:
    actor = actor_text(item.actor)
    line = (
        f"{ICONS.get(item.kind, '•')} {_what(item)} by {actor} {slack_date(item.at)} · "
        f"{escape(item.status)}"
    )
    if item.no_undo:
        line += f" · _{item.no_undo}_"
    elif item.note:
        line += f" · _{item.note}_"
    return line


def window_text(minutes: float) -> str:
    return duration(minutes * 60)


def _seen_line(seen: Seen) -> str:
    return (
        f":eyes: Task definition {code(seen.task_definition)} (image {code(seen.image)}) "
        f"rolled out {slack_date(seen.at)} · _seen on ECS, not made by opsbot_"
    )


def _as_of(outside: OutsideView | None) -> str | None:
    """When ECS was seen, if before the alarm: "as of 12:00:05, 50 s before this alarm".

    A look serves alarms that came up to a minute after it (bot/changes/outside.py):
    what ECS ran in between is not known, and the section must not claim it is.
    """
    if outside is None or outside.state != LOOKED or outside.looked_at is None:
        return None
    if outside.before_alarm_s <= 0:
        return None
    seconds = math.ceil(outside.before_alarm_s)
    return f"as of {slack_time(outside.looked_at)}, {seconds} s before this alarm"


def _ecs_line(outside: OutsideView | None) -> str | None:
    """The one line about the look at ECS when there is nothing of it to list."""
    if outside is None:
        return None
    if outside.state == LOOKING:
        return ":mag: Looking at ECS for deploys made outside opsbot…"
    if outside.state == FAILED:
        why = code(outside.error or "unknown")
        return f":grey_question: Could not look at ECS for deploys made outside opsbot ({why})."
    return None


def changes_blocks(
    view: ChangesView, *, incident_id: int, outside: OutsideView | None = None
) -> list[dict[str, Any]]:
    """The section of an incident's message, with an undo button per change that has one.

    `outside`: what a look at the ECS service found (None: no look is wanted).
    """
    window = window_text(view.window_min)
    where = f"`{view.label}`"
    seen = list(outside.seen) if outside is not None else []
    ecs_line = _ecs_line(outside)
    as_of = _as_of(outside)
    if not view.items and not seen:
        text = (
            f":white_check_mark: No deploys, rollbacks or flag changes by opsbot on {where} in "
            f"the {window} before this alarm."
        )
        if outside is not None and outside.state not in (LOOKING, FAILED):
            seen_on = f"seen on ECS {as_of}" if as_of else "seen on ECS"
            text = (
                f":white_check_mark: No deploys, rollbacks or flag changes on {where} in the "
                f"{window} before this alarm (by opsbot, or {seen_on})."
            )
        elements = [{"type": "mrkdwn", "text": text}]
        if ecs_line:
            elements.append({"type": "mrkdwn", "text": ecs_line})
        return [{"type": "context", "elements": elements}]
    head = f"*Changes to {where} in the {window} before this alarm*"
    dated: list[_Dated] = [(item.at, _line(item), item) for item in view.items]
    dated += [(s.at, _seen_line(s), None) for s in seen]
    dated.sort(key=lambda entry: entry[0], reverse=True)
    shown = _fitting(head, dated, view=view)
    listed = [item for _, _, item in dated[: len(shown)] if item is not None]
    more_line = _more_line(view, dated[len(shown) :])
    text = "\n".join([head, *shown] + ([more_line] if more_line else []))
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}}
    ]
    if as_of:
        ecs_line = f":mag: Deploys made outside opsbot: as seen on ECS {as_of}."
    if ecs_line:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": ecs_line}]})
    buttons = [
        {
            "type": "button",
            "action_id": f"{UNDO}:{item.key}",
            "text": {"type": "plain_text", "text": undo_label(item.undo)},
            "value": f"{incident_id}:{item.key}",
        }
        for item in listed
        if item.undo is not None
    ][:MAX_BUTTONS]
    if buttons:
        block_id = f"changes:{incident_id}"
        blocks.append({"type": "actions", "block_id": block_id, "elements": buttons})
    return blocks


def _more_line(view: ChangesView, left_out: list[_Dated]) -> str | None:
    """ "… and N more": opsbot's changes not listed by the view, and the lines left out."""
    more = view.more + len(left_out)
    if not more:
        return None
    seen = sum(1 for _, _, item in left_out if item is None)
    of_them = f" ({seen} of them seen on ECS, not made by opsbot)" if seen else ""
    return f"… and {more} more{of_them}: `/deploy history {view.app} {view.env}`"


def _fitting(head: str, dated: list[_Dated], *, view: ChangesView) -> list[str]:
    """The newest lines that fit the section: MAX_LINES at most, in SECTION_MAX characters
    with the head and the line that counts the rest."""
    shown = [line for _, line, _ in dated[:MAX_LINES]]
    while shown:
        tail = _more_line(view, dated[len(shown) :])
        if len("\n".join([head, *shown] + ([tail] if tail else []))) <= SECTION_MAX:
            break
        shown.pop()
    return shown


def unavailable(*, app: str, env: str) -> dict[str, Any]:
    """The one line shown when the changes could not be read."""
    text = f":grey_question: Could not look up the recent changes of `{app}/{env}` (it is logged)."
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def undo_reply(*, user_id: str, undo: Undo, answer: str) -> str:
    """The incident's thread: who clicked which undo, and what /rollback or /flag answered."""
    label = escape(undo_label(undo))
    return f":leftwards_arrow_with_hook: {actor_text(user_id)} clicked *{label}*: {answer}"
