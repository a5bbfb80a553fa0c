"""Text and Block Kit for flags: pure functions of flag states and changes.

Flag names, titles, values and who AWS says changed them are outside text
(whoever writes the AppConfig document or the SSM parameter): escaped here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.approvals.render import actor_text
from bot.flags.document import value_text
from bot.slack_dates import slack_date
from bot.slack_text import (
    ANSWER_MAX,
    ELLIPSIS,
    FIELD_MAX,
    SECTION_MAX,
    TEXT_MAX,
    clip,
    code,
    escape,
    inert,
)


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
    """``on``, ``off · rollout_percent=25``, or an SSM value: as mrkdwn, the values inert."""
    parts = []
    if "enabled" in values:
        parts.append("on" if values["enabled"] else "off")
    if "value" in values:
        parts.append(str(values["value"]))
    parts.extend(f"{k}={value_text(v)}" for k, v in values.items() if k not in ("enabled", "value"))
    return escape(" · ".join(parts))


_UNSET = object()


def changed(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The names whose values differ from `before` to `after` (`enabled` first, as states are)."""
    names = [*after, *(name for name in before if name not in after)]
    return [name for name in names if before.get(name, _UNSET) != after.get(name, _UNSET)]


def _shown(values: dict[str, Any], name: str) -> str:
    """One value of a state as `state_text` shows it, unescaped."""
    if name not in values:
        return "(unset)"
    if name == "enabled":
        return "on" if values[name] else "off"
    return str(values[name]) if name == "value" else value_text(values[name])


def _around(was: str, now: str, width: int) -> tuple[str, str]:
    """Both texts cut to about `width` characters at the same place, where they first differ.

    A cut at the start alone could leave two long values that differ only at
    their end looking alike: the difference always shows.
    """
    if len(was) <= width and len(now) <= width:
        return was, now
    pairs = zip(was, now, strict=False)
    same = next((i for i, (a, b) in enumerate(pairs) if a != b), min(len(was), len(now)))
    start = max(0, same - width // 5)
    shown = []
    for text in (was, now):
        part = text[start : start + width]
        head = ELLIPSIS if start and part else ""
        tail = ELLIPSIS if start + width < len(text) else ""
        shown.append(head + part + tail)
    return shown[0], shown[1]


def _changes(
    before: dict[str, Any], after: dict[str, Any], *, width: int
) -> list[tuple[str, str, str]]:
    """(label, was, now) of each changed value, cut around its difference, unescaped."""
    found = []
    for name in changed(before, after):
        was, now = _around(_shown(before, name), _shown(after, name), width)
        found.append(("" if name in ("enabled", "value") else name, was, now))
    return found


def delta_text(before: dict[str, Any], after: dict[str, Any], *, width: int) -> str:
    """What changes from `before` to `after` and nothing else, as mrkdwn, the values inert:
    ``off → on · rollout_percent 10 → 100``; each value cut to about `width` characters
    around its difference."""
    changes = _changes(before, after, width=width)
    parts = [f"{label} {was} → {now}" if label else f"{was} → {now}" for label, was, now in changes]
    return escape(" · ".join(parts))


def changed_states(before: dict[str, Any], after: dict[str, Any], *, width: int) -> tuple[str, str]:
    """`state_text` of `before` and of `after` with only the values that change, as mrkdwn,
    each cut to about `width` characters around its difference."""
    changes = _changes(before, after, width=width)
    was = [f"{label}={value}" if label else value for label, value, _ in changes]
    now = [f"{label}={value}" if label else value for label, _, value in changes]
    return escape(" · ".join(was)), escape(" · ".join(now))


DIFFERENCES_SHOWN = 10


def difference_text(difference: dict[str, Any]) -> str:
    """One flag that differs between two versions (document.differences), as mrkdwn."""
    flag = code(str(difference["flag"]))
    was, now = difference.get("from"), difference.get("to")
    if was is None:
        return f"{flag} added ({state_text(now or {})})"
    if now is None:
        return f"{flag} removed"
    text = f"{flag} {state_text(was)} → {state_text(now)}" if was != now else flag
    return text + (" (its definition changed)" if difference.get("definition") else "")


def undeployed_text(undeployed: dict[str, Any]) -> str:
    """A hosted version newer than the deployed one, and what it holds that is not deployed."""
    description = undeployed.get("description")
    differences = list(undeployed.get("differences") or [])
    shown = "; ".join(difference_text(d) for d in differences[:DIFFERENCES_SHOWN])
    if len(differences) > DIFFERENCES_SHOWN:
        shown += f"; and {len(differences) - DIFFERENCES_SHOWN} more"
    return (
        f"version {undeployed['version']}"
        + (f" ({inert(description, 300)})" if description else "")
        + f" was written after the deployed version {undeployed['deployed_version']} and is "
        + "not deployed"
        + (f": {shown}" if shown else " (it changes no flag)")
    )


def list_message(
    *, label: str, backend: str, lines: list[FlagLine], notes: list[str]
) -> dict[str, Any]:
    out = [f"*Feature flags of {escape(label)}* ({backend})"]
    if not lines:
        out.append("No flags.")
    for line in lines:
        if line.enabled is None:
            icon = ":grey_question:"
        else:
            icon = ":large_green_circle:" if line.enabled else ":white_circle:"
        title = f" ({escape(line.title)})" if line.title and line.title != line.name else ""
        text = f"{icon} {code(line.name)}{title} *{escape(line.value)}*"
        if line.attributes:
            attributes = ", ".join(f"{k}={value_text(v)}" for k, v in line.attributes.items())
            text += " · " + escape(attributes)
        if line.changed_by or line.changed_at:
            who = (
                actor_text(line.changed_by)
                if line.by_opsbot
                else escape(principal_name(line.changed_by or "?"))
            )
            at = f" {slack_date(line.changed_at)}" if line.changed_at else ""
            text += f" · last changed by {who}{at}"
        out.append(text)
    out.extend(notes)  # mrkdwn the caller composed
    return {"text": clip("\n".join(out), ANSWER_MAX), "blocks": None}


def principal_name(writer: str) -> str:
    """Who SSM says wrote a parameter, as a person reads it: an IAM ARN's user, or role
    and session (`arn:aws:sts::123456789012:assumed-role/Deploy/alice` is
    `Deploy/alice`), without the account id, which anyone may list; else as it is."""
    parts = writer.split(":", 5)
    if len(parts) < 6 or parts[0] != "arn":
        return writer
    resource = parts[5]
    return resource.partition("/")[2] or resource


def change_announcement(info: dict[str, Any], *, state: str) -> dict[str, Any]:
    """The change's one message in the release channel, in its current state."""
    icon = {
        "COMPLETE": ":white_check_mark:",
        "ROLLED_BACK": ":rewind:",
        "REVERTED": ":rewind:",
        "FAILED": ":x:",
        "UNREADABLE": ":warning:",  # opsbot cannot read the deployment (flows.unreadable)
    }.get(state, ":triangular_flag_on_post:")
    headline = (
        f"{icon} Flag {code(info['flag'])} of {code(info['label'])}: "
        f"{info['before']} → {info['after']}"
    )
    who = actor_text(info.get("actor"))
    if info.get("approved_by"):
        who += " (approved by " + ", ".join(actor_text(a) for a in info["approved_by"]) + ")"
    fields = [
        f"*Who*\n{who}",
        f"*AppConfig*\nversion {info['version']} · deployment {info['deployment']}",
        f"*Status*\n{escape(state)}",
    ]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(headline, SECTION_MAX)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": clip(f, FIELD_MAX)} for f in fields],
        },
    ]
    return {"text": clip(headline.replace("`", ""), TEXT_MAX), "blocks": blocks}


def progress_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread reply for AppConfig deployment looks that piled up unsent (opsbot's mrkdwn)."""
    shown = items[-8:]
    lines = [f"… {len(items) - len(shown)} earlier updates"] if len(items) > len(shown) else []
    lines.extend(str(item.get("text", "")) for item in shown)
    return {"text": clip("\n".join(lines), SECTION_MAX), "blocks": None}
