"""Block Kit for incidents: pure functions of incident state, testable as data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.alarms.parse import parse_time
from bot.incidents.models import Incident

STATE_ICON = {
    "ALARM": ":red_circle:",
    "OK": ":large_green_circle:",
    "INSUFFICIENT_DATA": ":white_circle:",
}
STATE_WORD = {"ALARM": "ALARM", "OK": "OK", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def hhmm(moment: datetime | None) -> str:
    return moment.strftime("%H:%M:%S UTC") if moment else "?"


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "?"


def duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def _state(incident: Incident) -> str:
    return incident.alarm_state or ("OK" if not incident.is_open else "ALARM")


def summary_text(incident: Incident) -> str:
    """The notification fallback: what a phone shows in one line."""
    state = _state(incident)
    where = ", ".join(p for p in (incident.region, incident.account) if p)
    suffix = f" ({where})" if where else ""
    return clip(
        f"{STATE_ICON.get(state, '')} {STATE_WORD.get(state, state)}: "
        f"{incident.title}{suffix}".strip(),
        3000,
    )


def _fields(incident: Incident) -> list[dict[str, str]]:
    snap = incident.snapshot or {}
    state = _state(incident)
    fields = [f"*State*\n{STATE_WORD.get(state, state)} since {hhmm(incident.state_changed_at)}"]
    if snap.get("metric"):
        fields.append(f"*Metric*\n{snap['metric']}")
    if snap.get("threshold"):
        fields.append(f"*Threshold*\n{snap['threshold']}")
    if incident.account or incident.region:
        fields.append(f"*Account / region*\n{incident.account or '?'} / {incident.region or '?'}")
    fields.append(f"*Severity*\n{incident.severity}")
    if incident.routing_key_env:
        fields.append(f"*PagerDuty*\n{'paged' if incident.paged else 'not paged'}")
    return [{"type": "mrkdwn", "text": clip(text, FIELD_MAX)} for text in fields[:10]]


def _context(incident: Incident) -> str:
    parts = [f"Incident #{incident.id}", f"opened {when(incident.opened_at)}"]
    if incident.transitions > 1:
        parts.append(f"{incident.transitions} transitions")
    if incident.acknowledged_by:
        parts.append(
            f"acknowledged by {incident.acknowledged_by} at {hhmm(incident.acknowledged_at)}"
        )
    if not incident.is_open and incident.resolved_at:
        took = duration((incident.resolved_at - incident.opened_at).total_seconds())
        who = f" by {incident.resolved_by}" if incident.resolved_by else ""
        parts.append(f"resolved{who} at {hhmm(incident.resolved_at)} after {took}")
    if incident.silenced_until:
        parts.append(f"silenced until {hhmm(incident.silenced_until)}")
    return " · ".join(parts)


def _actions(incident: Incident) -> list[dict[str, Any]]:
    snap = incident.snapshot or {}
    buttons: list[dict[str, Any]] = []
    if snap.get("console_url"):
        buttons.append(
            {
                "type": "button",
                "action_id": "incident_open_console",
                "text": {"type": "plain_text", "text": "Open in CloudWatch"},
                "url": snap["console_url"],
            }
        )
    if incident.is_open:
        value = str(incident.id)
        if incident.acknowledged_at is None:
            buttons.append(
                {
                    "type": "button",
                    "action_id": "incident_acknowledge",
                    "text": {"type": "plain_text", "text": "Acknowledge"},
                    "style": "primary",
                    "value": value,
                }
            )
        buttons.append(
            {
                "type": "button",
                "action_id": "incident_resolve",
                "text": {"type": "plain_text", "text": "Resolve"},
                "value": value,
            }
        )
    return buttons


def incident_message(incident: Incident) -> dict[str, Any]:
    """The one message an incident has in Slack, in its current state."""
    snap = incident.snapshot or {}
    state = _state(incident)
    header = f"{STATE_ICON.get(state, '')} {STATE_WORD.get(state, state)} · {incident.title}"
    body = snap.get("reason") or snap.get("description") or ""
    if incident.mention and incident.is_open and state == "ALARM":
        body = f"{incident.mention} {body}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(header, HEADER_MAX)}},
    ]
    if body:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(body, SECTION_MAX)}}
        )
    if snap.get("description") and snap.get("reason"):
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": clip(snap["description"], 2000)}],
            }
        )
    blocks.append({"type": "section", "fields": _fields(incident)})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _context(incident)}]})
    actions = _actions(incident)
    if actions:
        blocks.append(
            {"type": "actions", "block_id": f"incident:{incident.id}", "elements": actions}
        )
    return {"text": summary_text(incident), "blocks": blocks}


def _transition_line(item: dict[str, Any]) -> str:
    at = parse_time(item.get("at"))
    old = STATE_WORD.get(item.get("from") or "", item.get("from") or "?")
    new = STATE_WORD.get(item.get("to") or "", item.get("to") or "?")
    icon = STATE_ICON.get(item.get("to") or "", "")
    line = f"{icon} *{old} → {new}* at {hhmm(at)}"
    if item.get("note"):
        line += f" ({item['note']})"
    if item.get("reason"):
        line += f"\n>{clip(str(item['reason']), 500)}"
    return line


def transitions_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread reply for one or more transitions that piled up while unsent."""
    if len(items) == 1:
        text = _transition_line(items[0])
        return {"text": clip(text, SECTION_MAX), "blocks": None}
    first = parse_time(items[0].get("at"))
    last_state = STATE_WORD.get(items[-1].get("to") or "", items[-1].get("to") or "?")
    headline = f"Flapped {len(items)} times since {hhmm(first)}, now *{last_state}*"
    shown = items[-10:]
    lines = [_transition_line({**item, "reason": None}) for item in shown]
    if len(items) > len(shown):
        lines.insert(0, f"… {len(items) - len(shown)} earlier transitions")
    return {"text": clip(headline + "\n" + "\n".join(lines), SECTION_MAX), "blocks": None}
