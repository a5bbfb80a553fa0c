"""Text and Block Kit for flags: pure functions of flag states and changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.approvals.render import actor_text
from bot.flags.document import value_text
from bot.incidents.render import clip
from bot.slack_dates import slack_date

ANSWER_MAX = 8000


@dataclass(frozen=True)
class FlagLine:
    """One flag of `/flag list`."""

    name: str
    enabled: bool | None  # None: a value that is neither true nor false
    value: str  # as stored (SSM) or on/off (AppConfig)
    attributes: dict[str, Any]
    title: str | None
    changed_by: str | None  # Slack user id (opsbot's audit) or what AWS says
    changed_at: datetime | None
    by_opsbot: bool


def state_text(values: dict[str, Any]) -> str:
    """``on``, ``off · rollout_percent=25``, or an SSM value."""
    parts = []
    if "enabled" in values:
        parts.append("on" if values["enabled"] else "off")
    if "value" in values:
        parts.append(str(values["value"]))
    parts.extend(f"{k}={value_text(v)}" for k, v in values.items() if k not in ("enabled", "value"))
    return " · ".join(parts)


def list_message(
    *, label: str, backend: str, lines: list[FlagLine], notes: list[str]
) -> dict[str, Any]:
    out = [f"*Feature flags of {label}* ({backend})"]
    if not lines:
        out.append("No flags.")
    for line in lines:
        if line.enabled is None:
            icon = ":grey_question:"
        else:
            icon = ":large_green_circle:" if line.enabled else ":white_circle:"
        title = f" ({line.title})" if line.title and line.title != line.name else ""
        text = f"{icon} `{line.name}`{title} *{line.value}*"
        if line.attributes:
            text += " · " + ", ".join(f"{k}={value_text(v)}" for k, v in line.attributes.items())
        if line.changed_by or line.changed_at:
            who = actor_text(line.changed_by) if line.by_opsbot else (line.changed_by or "?")
            at = f" {slack_date(line.changed_at)}" if line.changed_at else ""
            text += f" · last changed by {who}{at}"
        out.append(text)
    out.extend(notes)
    return {"text": clip("\n".join(out), ANSWER_MAX), "blocks": None}


def change_announcement(info: dict[str, Any], *, state: str) -> dict[str, Any]:
    """The change's one message in the release channel, in its current state."""
    icon = {
        "COMPLETE": ":white_check_mark:",
        "ROLLED_BACK": ":rewind:",
        "REVERTED": ":rewind:",
        "FAILED": ":x:",
    }.get(state, ":triangular_flag_on_post:")
    headline = (
        f"{icon} Flag `{info['flag']}` of `{info['label']}`: {info['before']} → {info['after']}"
    )
    who = actor_text(info.get("actor"))
    if info.get("approved_by"):
        who += " (approved by " + ", ".join(actor_text(a) for a in info["approved_by"]) + ")"
    fields = [
        f"*Who*\n{who}",
        f"*AppConfig*\nversion {info['version']} · deployment {info['deployment']}",
        f"*Status*\n{state}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(headline, 3000)}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields]},
    ]
    return {"text": clip(headline.replace("`", ""), 3000), "blocks": blocks}


def progress_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread reply for AppConfig deployment looks that piled up unsent."""
    shown = items[-8:]
    lines = [f"… {len(items) - len(shown)} earlier updates"] if len(items) > len(shown) else []
    lines.extend(str(item.get("text", "")) for item in shown)
    return {"text": clip("\n".join(lines), 3000), "blocks": None}
