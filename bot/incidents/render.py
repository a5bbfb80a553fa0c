"""Block Kit for incidents: pure functions of incident state, testable as data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.alarms.parse import parse_time
from bot.incidents.models import ALARM, Incident, IncidentEvent

STATE_ICON = {
    "ALARM": ":red_circle:",
    "OK": ":large_green_circle:",
    "INSUFFICIENT_DATA": ":white_circle:",
    "TRIGGERED": ":rotating_light:",
    "ACKNOWLEDGED": ":large_orange_circle:",
    "RESOLVED": ":large_green_circle:",
}
STATE_WORD = {"ALARM": "ALARM", "OK": "OK", "INSUFFICIENT_DATA": "INSUFFICIENT DATA"}

# Action ids of the incident message's controls (handlers/incidents.py listens to them).
ACKNOWLEDGE = "incident_acknowledge"
RESOLVE = "incident_resolve"
ESCALATE = "incident_escalate"
SILENCE = "incident_silence"
OPEN_CONSOLE = "incident_open_console"
OPEN_PAGERDUTY = "incident_open_pagerduty"
LINK_ACTIONS = (OPEN_CONSOLE, OPEN_PAGERDUTY)

# Silence menu: option value suffix -> minutes (0 ends a silence).
SILENCE_CHOICES = {"30m": 30, "2h": 120, "24h": 1440}
SILENCE_LABELS = {"30m": "30 min", "2h": "2 h", "24h": "24 h"}
UNSILENCE = "off"

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def channel_ref(channel: str) -> str:
    """A channel as Slack links it: `<#C0123>` for an id, the name as configured otherwise."""
    return f"<#{channel}>" if channel[:1] in ("C", "G") and channel.isalnum() else channel


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
    if incident.source != ALARM:
        if not incident.is_open:
            return "RESOLVED"
        return "ACKNOWLEDGED" if incident.acknowledged_at else "TRIGGERED"
    return incident.alarm_state or ("OK" if not incident.is_open else "ALARM")


def _pagerduty_text(incident: Incident) -> str:
    number = f"#{incident.pagerduty_number}" if incident.pagerduty_number else "incident"
    link = f"<{incident.pagerduty_url}|{number}>" if incident.pagerduty_url else number
    parts = [link if incident.pagerduty_incident_id else ("paged" if incident.paged else "")]
    if incident.pagerduty_status:
        parts.append(incident.pagerduty_status)
    if incident.escalation_level:
        parts.append(f"level {incident.escalation_level}")
    if incident.priority:
        parts.append(incident.priority)
    text = " · ".join(p for p in parts if p) or "not paged"
    if incident.assignees:
        text += "\nassigned to " + ", ".join(incident.assignees)
    return text


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
    since = incident.state_changed_at or (
        incident.resolved_at or incident.acknowledged_at or incident.opened_at
    )
    fields = [f"*State*\n{STATE_WORD.get(state, state)} since {hhmm(since)}"]
    if snap.get("metric"):
        fields.append(f"*Metric*\n{snap['metric']}")
    if snap.get("threshold"):
        fields.append(f"*Threshold*\n{snap['threshold']}")
    if incident.account or incident.region:
        fields.append(f"*Account / region*\n{incident.account or '?'} / {incident.region or '?'}")
    fields.append(f"*Severity*\n{incident.severity}")
    if incident.routing_key_env or incident.in_pagerduty:
        fields.append(f"*PagerDuty*\n{_pagerduty_text(incident)}")
    return [{"type": "mrkdwn", "text": clip(text, FIELD_MAX)} for text in fields[:10]]


def _context(incident: Incident) -> str:
    opened = f"opened {when(incident.opened_at)}"
    if incident.opened_by:
        opened += f" by {incident.opened_by}"
    parts = [f"Incident #{incident.id}", opened]
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
        by = f" by {incident.silenced_by}" if incident.silenced_by else ""
        parts.append(f"silenced{by} until {hhmm(incident.silenced_until)}")
    return " · ".join(parts)


def _button(action_id: str, text: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def _silence_menu(incident: Incident) -> dict[str, Any]:
    def option(text: str, value: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": text}, "value": f"{incident.id}:{value}"}

    options = [option(f"Silence {label}", key) for key, label in SILENCE_LABELS.items()]
    if incident.silenced_until:
        options.append(option("End the silence", UNSILENCE))
    return {
        "type": "static_select",
        "action_id": SILENCE,
        "placeholder": {"type": "plain_text", "text": "Silence…"},
        "options": options,
    }


def _actions(incident: Incident) -> list[dict[str, Any]]:
    snap = incident.snapshot or {}
    elements: list[dict[str, Any]] = []
    value = str(incident.id)
    if incident.is_open:
        if incident.acknowledged_at is None:
            elements.append(_button(ACKNOWLEDGE, "Acknowledge", value, "primary"))
        elements.append(_button(RESOLVE, "Resolve", value))
        if incident.in_pagerduty:
            elements.append(_button(ESCALATE, "Escalate", value))
    if incident.source == ALARM:
        elements.append(_silence_menu(incident))
    if snap.get("console_url"):
        elements.append(
            {**_button(OPEN_CONSOLE, "Open in CloudWatch", value), "url": snap["console_url"]}
        )
    if incident.pagerduty_url:
        elements.append(
            {**_button(OPEN_PAGERDUTY, "Open in PagerDuty", value), "url": incident.pagerduty_url}
        )
    return elements


def incident_message(
    incident: Incident, *, extra_blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The one message an incident has in Slack, in its current state.

    `extra_blocks` (what changed before the alarm) follow the incident's own buttons.
    """
    snap = incident.snapshot or {}
    state = _state(incident)
    header = f"{STATE_ICON.get(state, '')} {STATE_WORD.get(state, state)} · {incident.title}"
    body = snap.get("reason") or snap.get("description") or ""
    if incident.mention and incident.is_open and state in ("ALARM", "TRIGGERED"):
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
    blocks += extra_blocks or []
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


# -- /incident list and timeline ------------------------------------------------------------


def _age(seconds: float) -> str:
    return duration(max(0.0, seconds)) + " ago"


def list_line(incident: Incident, *, now: datetime) -> str:
    """One open incident in `/incident list`."""
    state = _state(incident)
    line = (
        f"{STATE_ICON.get(state, '')} *#{incident.id}* {clip(incident.title, 120)} · "
        f"{incident.severity} · {channel_ref(incident.channel)} · opened "
        f"{_age((now - incident.opened_at).total_seconds())}"
    )
    if incident.acknowledged_by:
        line += f" · acknowledged by {incident.acknowledged_by}"
    elif incident.in_pagerduty:
        line += " · *not acknowledged*"
    if incident.silenced_until and incident.silenced_until > now:
        line += f" · silenced until {hhmm(incident.silenced_until)}"
    return line


def _sections(lines: list[str], *, max_blocks: int) -> list[dict[str, Any]]:
    """Lines packed into as few sections as fit (3,000 characters each)."""
    blocks: list[dict[str, Any]] = []
    chunk = ""
    for line in lines:
        line = clip(line, SECTION_MAX)
        if chunk and len(chunk) + 1 + len(line) > SECTION_MAX:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": chunk}})
    if len(blocks) > max_blocks:
        blocks = blocks[:max_blocks]
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "… (cut to fit Slack)"}]}
        )
    return blocks


def incident_list(incidents: list[Incident], *, now: datetime, more: bool) -> dict[str, Any]:
    if not incidents:
        return {"text": ":white_check_mark: No open incidents.", "blocks": None}
    lines = [list_line(i, now=now) for i in incidents]
    head = f"*Open incidents* ({len(incidents)}{'+' if more else ''}), newest first:"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    blocks += _sections(lines, max_blocks=45)
    return {"text": f"{len(incidents)} open incidents", "blocks": blocks}


EVENT_WORDS = {
    "alarm_state": "alarm",
    "reopened": "reopened",
    "late_transition": "late alarm transition",
    "declared": "declared",
    "opened": "opened in PagerDuty",
    "paged": "paged",
    "acknowledged": "acknowledged",
    "unacknowledged": "unacknowledged",
    "resolved": "resolved",
    "escalated": "escalated",
    "reassigned": "reassigned",
    "priority": "priority changed",
    "note": "note",
    "reminder": "reminder",
    "silenced": "silenced",
    "unsilenced": "silence ended",
    "pagerduty_refused": "PagerDuty action failed",
}


def _event_text(event: IncidentEvent) -> str:
    word = EVENT_WORDS.get(event.kind, event.kind.replace("_", " "))
    if event.kind in ("alarm_state", "reopened", "late_transition") and event.to_state:
        old = STATE_WORD.get(event.from_state or "", event.from_state or "?")
        word = f"{word} {old} → {STATE_WORD.get(event.to_state, event.to_state)}"
    by = f" by {event.actor}" if event.actor else ""
    text = f": {event.text}" if event.text else ""
    return f"{word}{by}{text}"


def timeline_message(incident: Incident, events: list[IncidentEvent]) -> dict[str, Any]:
    """The incident's events, oldest first, as Slack shows them."""
    state = _state(incident)
    head = (
        f"{STATE_ICON.get(state, '')} *Incident #{incident.id}: {clip(incident.title, 200)}* "
        f"({STATE_WORD.get(state, state)}), opened {when(incident.opened_at)}"
    )
    lines = [f"`{hhmm(e.at)}` {clip(_event_text(e), 600)}" for e in events]
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(head, SECTION_MAX)}}
    ]
    blocks += _sections(lines or ["(no events)"], max_blocks=45)
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"For a postmortem: `/incident timeline {incident.id} markdown`",
                }
            ],
        }
    )
    return {"text": f"Timeline of incident #{incident.id}", "blocks": blocks}


def _plain(text: str, names: dict[str, str]) -> str:
    """Slack markup as plain Markdown: mentions become @names, links become [text](url)."""
    for user_id, name in names.items():
        text = text.replace(f"<@{user_id}>", f"@{name}")
    out = []
    rest = text
    while "<" in rest and ">" in rest.split("<", 1)[1]:
        before, after = rest.split("<", 1)
        inner, rest = after.split(">", 1)
        out.append(before)
        if inner.startswith(("http://", "https://")):
            url, _, label = inner.partition("|")
            out.append(f"[{label or url}]({url})")
        elif inner.startswith("@"):
            out.append(inner)
        elif inner.startswith("#"):
            out.append("#" + inner[1:].split("|")[-1])
        elif inner.startswith("!subteam^"):
            out.append("@" + (inner.split("|")[-1] if "|" in inner else "oncall"))
        else:
            out.append(inner.split("|")[-1])
    out.append(rest)
    return "".join(out).replace("|", "\\|")


def timeline_markdown(
    incident: Incident, events: list[IncidentEvent], *, names: dict[str, str]
) -> str:
    """The timeline as Markdown for a postmortem document."""
    state = _state(incident)
    lines = [
        f"## Incident #{incident.id}: {_plain(incident.title, names)}",
        "",
        f"- Status: {STATE_WORD.get(state, state)} ({incident.status})",
        f"- Severity: {incident.severity}",
        f"- Opened: {when(incident.opened_at)}",
    ]
    if incident.resolved_at:
        took = duration((incident.resolved_at - incident.opened_at).total_seconds())
        lines.append(f"- Resolved: {when(incident.resolved_at)} (after {took})")
    if incident.acknowledged_by:
        lines.append(f"- Acknowledged by: {_plain(incident.acknowledged_by, names)}")
    if incident.pagerduty_url:
        lines.append(f"- PagerDuty: {incident.pagerduty_url}")
    lines += ["", "| Time (UTC) | Event |", "| --- | --- |"]
    for event in events:
        lines.append(f"| {when(event.at)} | {_plain(_event_text(event), names)} |")
    return "\n".join(lines)
