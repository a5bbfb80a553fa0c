"""Block Kit for incidents: pure functions of incident state, testable as data.

Titles, alarm reasons and descriptions, notes and PagerDuty's words are
outside text: escaped here (bot/slack_text.py). People's names and the texts
opsbot composes with mentions (`acknowledged_by`, an escalation's assignees)
keep their mentions and lose any other markup. The route's `mention` is
configuration and stays live. Links go only to known hosts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bot.clock import parse_time
from bot.incidents.models import ALARM, Incident, IncidentEvent
from bot.slack_dates import slack_date, utc_text
from bot.slack_text import (
    BLOCKS_MAX,
    CONSOLE_HOSTS,
    CONTEXT_MAX,
    ELLIPSIS,
    FIELD_MAX,
    HEADER_MAX,
    MESSAGE_BUDGET,
    SECTION_MAX,
    TEXT_MAX,
    code_block_text,
    escape,
    fit_blocks,
    inert,
    keep_mentions,
    link,
    unescape,
    url_on,
)
from bot.slack_text import clip as clip  # the domain's modules clip through render

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
START_CHANNEL = "incident_start_channel"
LINK_ACTIONS = (OPEN_CONSOLE, OPEN_PAGERDUTY)

# Silence menu: option value suffix -> minutes (0 ends a silence).
SILENCE_CHOICES = {"30m": 30, "2h": 120, "24h": 1440}
SILENCE_LABELS = {"30m": "30 min", "2h": "2 h", "24h": "24 h"}
UNSILENCE = "off"

# Where PagerDuty's html_url may point.
PAGERDUTY_HOSTS = ("pagerduty.com",)

# Event kinds whose text opsbot composes as mrkdwn, from people's mentions and escaped
# names (see keep_mentions); every other kind's text is outside text (a note, an alarm
# reason, an error) and is escaped.
COMPOSED_EVENTS = frozenset({"escalated", "reminder", "paged", "reassigned", "opened"})


def channel_ref(channel: str) -> str:
    """A channel as Slack links it: `<#C0123>` for an id, the name as configured otherwise."""
    return f"<#{channel}>" if channel[:1] in ("C", "G") and channel.isalnum() else channel


def hhmm(moment: datetime | None) -> str:
    return slack_date(moment)


def when(moment: datetime | None) -> str:
    return slack_date(moment)


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


def title_text(incident: Incident, limit: int) -> str:
    """The incident's title, inert, in at most `limit` characters."""
    return inert(incident.title, limit)


def pagerduty_link(incident: Incident) -> str | None:
    """PagerDuty's page of the incident, when it is on PagerDuty's own host."""
    return url_on(incident.pagerduty_url, PAGERDUTY_HOSTS)


def console_link(incident: Incident) -> str | None:
    """The alarm in the CloudWatch console, when the snapshot's link is on a console host."""
    return url_on((incident.snapshot or {}).get("console_url"), CONSOLE_HOSTS.values())


def _pagerduty_text(incident: Incident) -> str:
    number = f"#{incident.pagerduty_number}" if incident.pagerduty_number else "incident"
    shown = link(incident.pagerduty_url, number, hosts=PAGERDUTY_HOSTS)
    parts = [shown if incident.pagerduty_incident_id else ("paged" if incident.paged else "")]
    if incident.pagerduty_status:
        parts.append(escape(incident.pagerduty_status))
    if incident.escalation_level:
        parts.append(f"level {incident.escalation_level}")
    if incident.priority:
        parts.append(escape(incident.priority))
    text = " · ".join(p for p in parts if p) or "not paged"
    if incident.assignees:
        text += "\nassigned to " + ", ".join(keep_mentions(a) for a in incident.assignees)
    return text


def summary_plain(incident: Incident) -> str:
    """What happened in one line, as plain (unescaped) text: for PagerDuty, not Slack."""
    state = _state(incident)
    where = ", ".join(p for p in (incident.region, incident.account) if p)
    suffix = f" ({where})" if where else ""
    icon, word = STATE_ICON.get(state, ""), STATE_WORD.get(state, state)
    return f"{icon} {word}: {incident.title}{suffix}".strip()


def summary_text(incident: Incident) -> str:
    """The notification fallback: what a phone shows in one line."""
    return inert(summary_plain(incident), TEXT_MAX)


def _fields(incident: Incident) -> list[dict[str, str]]:
    snap = incident.snapshot or {}
    state = _state(incident)
    since = incident.state_changed_at or (
        incident.resolved_at or incident.acknowledged_at or incident.opened_at
    )
    fields = [f"*State*\n{escape(STATE_WORD.get(state, state))} since {hhmm(since)}"]
    if snap.get("metric"):
        fields.append(f"*Metric*\n{escape(snap['metric'])}")
    if snap.get("threshold"):
        fields.append(f"*Threshold*\n{escape(snap['threshold'])}")
    if incident.account or incident.region:
        where = f"{incident.account or '?'} / {incident.region or '?'}"
        fields.append(f"*Account / region*\n{escape(where)}")
    fields.append(f"*Severity*\n{escape(incident.severity)}")
    if incident.routing_key_env or incident.in_pagerduty:
        fields.append(f"*PagerDuty*\n{_pagerduty_text(incident)}")
    return [{"type": "mrkdwn", "text": clip(text, FIELD_MAX)} for text in fields[:10]]


def _context(incident: Incident) -> str:
    opened = f"opened {when(incident.opened_at)}"
    if incident.opened_by:
        opened += f" by {keep_mentions(incident.opened_by)}"
    parts = [f"Incident #{incident.id}", opened]
    if incident.transitions > 1:
        parts.append(f"{incident.transitions} transitions")
    if incident.acknowledged_by:
        parts.append(
            f"acknowledged by {keep_mentions(incident.acknowledged_by)} "
            f"at {hhmm(incident.acknowledged_at)}"
        )
    if not incident.is_open and incident.resolved_at:
        took = duration((incident.resolved_at - incident.opened_at).total_seconds())
        who = f" by {keep_mentions(incident.resolved_by)}" if incident.resolved_by else ""
        parts.append(f"resolved{who} at {hhmm(incident.resolved_at)} after {took}")
    if incident.silenced_until:
        by = f" by {keep_mentions(incident.silenced_by)}" if incident.silenced_by else ""
        parts.append(f"silenced{by} until {hhmm(incident.silenced_until)}")
    if incident.has_channel and incident.slack_channel_id:
        parts.append(f"channel {channel_ref(incident.slack_channel_id)}")
    return clip(" · ".join(parts), CONTEXT_MAX)


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
    elements: list[dict[str, Any]] = []
    value = str(incident.id)
    if incident.is_open:
        if incident.acknowledged_at is None:
            elements.append(_button(ACKNOWLEDGE, "Acknowledge", value, "primary"))
        elements.append(_button(RESOLVE, "Resolve", value))
        if incident.in_pagerduty:
            elements.append(_button(ESCALATE, "Escalate", value))
        if not incident.has_live_channel:  # none yet, or archived before a reopen
            elements.append(_button(START_CHANNEL, "Start a channel", value))
    if incident.source == ALARM:
        elements.append(_silence_menu(incident))
    console = console_link(incident)
    if console:
        elements.append({**_button(OPEN_CONSOLE, "Open in CloudWatch", value), "url": console})
    pagerduty = pagerduty_link(incident)
    if pagerduty:
        elements.append({**_button(OPEN_PAGERDUTY, "Open in PagerDuty", value), "url": pagerduty})
    return elements


def _description(incident: Incident) -> str:
    """The snapshot's description as mrkdwn: an alarm's is outside text; opsbot writes the
    others ("Declared from Slack by <@U1>."), with mentions and outside names in them."""
    description = str((incident.snapshot or {}).get("description") or "")
    return escape(description) if incident.source == ALARM else keep_mentions(description)


def incident_message(
    incident: Incident, *, extra_blocks: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The one message an incident has in Slack, in its current state.

    `extra_blocks` (what changed before the alarm) follow the incident's own buttons.
    """
    snap = incident.snapshot or {}
    state = _state(incident)
    header = f"{STATE_ICON.get(state, '')} {STATE_WORD.get(state, state)} · {incident.title}"
    body = escape(snap["reason"]) if snap.get("reason") else _description(incident)
    if incident.mention and incident.is_open and state in ("ALARM", "TRIGGERED"):
        body = f"{incident.mention} {body}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": inert(header, HEADER_MAX)}},
    ]
    if body:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": clip(body, SECTION_MAX)}}
        )
    if snap.get("description") and snap.get("reason"):
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": clip(_description(incident), CONTEXT_MAX)}],
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
    line = f"{icon} *{escape(old)} → {escape(new)}* at {hhmm(at)}"
    if item.get("note"):
        line += f" ({escape(item['note'])})"
    if item.get("reason"):
        line += f"\n>{inert(item['reason'], 500)}"
    return line


def transitions_reply(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One thread reply for the transitions folded within a window (or while unsent).

    Several read as one line first: "ALARM → OK → ALARM … 7 times in 30 s, last: ALARM
    at <date>", then the last ten, one a line.
    """
    if len(items) == 1:
        text = _transition_line(items[0])
        return {"text": clip(text, SECTION_MAX), "blocks": None}
    first, last = parse_time(items[0].get("at")), parse_time(items[-1].get("at"))
    states = [items[0].get("from") or "?", *(item.get("to") or "?" for item in items)]
    chain = " → ".join(STATE_WORD.get(state, state) for state in states[:3])
    if len(states) > 3:
        chain += " …"
    last_state = items[-1].get("to") or "?"
    span = duration((last - first).total_seconds()) if first and last else "?"
    headline = (
        f"{STATE_ICON.get(last_state, '')} *{escape(chain)}* {len(items)} times in {span}, "
        f"last: *{escape(STATE_WORD.get(last_state, last_state))}* at {hhmm(last)}"
    )
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
        f"{STATE_ICON.get(state, '')} *#{incident.id}* {title_text(incident, 120)} · "
        f"{escape(incident.severity)} · {channel_ref(incident.channel)} · opened "
        f"{_age((now - incident.opened_at).total_seconds())}"
    )
    if incident.acknowledged_by:
        line += f" · acknowledged by {keep_mentions(incident.acknowledged_by)}"
    elif incident.in_pagerduty:
        line += " · *not acknowledged*"
    if incident.silenced_until and incident.silenced_until > now:
        line += f" · silenced until {hhmm(incident.silenced_until)}"
    return line


def _sections(lines: list[str]) -> list[dict[str, Any]]:
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
    return blocks


def _newest_sections(
    lines: list[str], *, max_blocks: int, max_chars: int
) -> tuple[list[dict[str, Any]], int]:
    """The newest of `lines` (oldest first) packed into sections as `_sections` packs
    them, as many as fit `max_blocks` sections and `max_chars` characters; and how many
    older lines are left out. A timeline's latest events matter most: cutting the tail
    would hide the state it is in now."""
    chunks: list[str] = []
    used = 0
    for index in range(len(lines) - 1, -1, -1):
        line = clip(lines[index], SECTION_MAX)
        joins = bool(chunks) and len(chunks[0]) + 1 + len(line) <= SECTION_MAX
        size = len(line) + 1 if joins else len(line)
        if used + size > max_chars or (not joins and len(chunks) >= max_blocks):
            left_out = index + 1
            break
        if joins:
            chunks[0] = f"{line}\n{chunks[0]}"
        else:
            chunks.insert(0, line)
        used += size
    else:
        left_out = 0
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks]
    return blocks, left_out


def _left_out(count: int, *, see: str) -> str:
    """The note that says how many earlier events a message leaves out, and where to look."""
    events = "event is" if count == 1 else "events are"
    return f"{count} earlier {events} not shown here, to fit Slack (the newest are): {see}"


def incident_list(incidents: list[Incident], *, now: datetime, more: bool) -> dict[str, Any]:
    if not incidents:
        return {"text": ":white_check_mark: No open incidents.", "blocks": None}
    lines = [list_line(i, now=now) for i in incidents]
    head = f"*Open incidents* ({len(incidents)}{'+' if more else ''}), newest first:"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    blocks = fit_blocks(blocks + _sections(lines))
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
    "earlier_episode": "asked before it reopened",
    "channel": "channel started",
    "channel_archived": "channel archived",
}


def _event_words(event: IncidentEvent) -> str:
    """What happened, in opsbot's words (no outside text)."""
    word = EVENT_WORDS.get(event.kind, event.kind.replace("_", " "))
    if event.kind in ("alarm_state", "reopened", "late_transition") and event.to_state:
        old = STATE_WORD.get(event.from_state or "", event.from_state or "?")
        word = f"{word} {old} → {STATE_WORD.get(event.to_state, event.to_state)}"
    return word


def _event_text(event: IncidentEvent) -> str:
    """One event as mrkdwn: the actor keeps a mention, the text is inert."""
    by = f" by {keep_mentions(event.actor)}" if event.actor else ""
    text = ""
    if event.text:
        shown = keep_mentions if event.kind in COMPOSED_EVENTS else escape
        text = f": {shown(event.text)}"
    return f"{escape(_event_words(event))}{by}{text}"


def timeline_message(incident: Incident, events: list[IncidentEvent]) -> dict[str, Any]:
    """The incident's events, oldest first, as Slack shows them."""
    state = _state(incident)
    head = (
        f"{STATE_ICON.get(state, '')} *Incident #{incident.id}: {title_text(incident, 200)}* "
        f"({STATE_WORD.get(state, state)}), opened {when(incident.opened_at)}"
    )
    lines = [f"{slack_date(e.at, seconds=True)} {clip(_event_text(e), 600)}" for e in events]
    head = clip(head, SECTION_MAX)
    postmortem = f"For a postmortem: `/incident timeline {incident.id} markdown`"
    # Room for the head, the note on events left out and the postmortem line.
    sections, left_out = _newest_sections(
        lines or ["(no events)"],
        max_blocks=BLOCKS_MAX - 3,
        max_chars=MESSAGE_BUDGET - len(head) - len(postmortem) - CONTEXT_MAX,
    )
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": head}}]
    if left_out:
        see = f"`/incident timeline {incident.id} markdown` has them as a document."
        blocks.append(_note(_left_out(left_out, see=see)))
    blocks += sections
    blocks.append(_note(postmortem))
    return {"text": f"Timeline of incident #{incident.id}", "blocks": blocks}


def _note(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


# The mentions keep_mentions leaves live, read back as names for a document.
_MENTION_TOKEN = re.compile(
    r"<@(?P<user>[UW][A-Z0-9]+)>"
    r"|<!subteam\^[A-Z0-9]+(?:\|@?(?P<group>[^<>|]*))?>"
    r"|<#(?P<channel>[CG][A-Z0-9]+)(?:\|(?P<channel_name>[^<>|]*))?>"
)


def _named(text: str, names: dict[str, str]) -> str:
    """opsbot's mrkdwn (mentions, escaped names) as plain text: mentions become @names."""

    def name(match: re.Match[str]) -> str:
        if match.group("user"):
            return "@" + names.get(match.group("user"), match.group("user"))
        if match.group("channel"):
            return "#" + (match.group("channel_name") or match.group("channel"))
        return "@" + (match.group("group") or "oncall")

    return unescape(_MENTION_TOKEN.sub(name, keep_mentions(text)))


def _cell(text: str) -> str:
    """Text as one Markdown table cell: one line, no column break."""
    return " ".join(text.split()).replace("|", "\\|")


def _event_plain(event: IncidentEvent, names: dict[str, str]) -> str:
    by = f" by {_named(event.actor, names)}" if event.actor else ""
    text = ""
    if event.text:
        text = ": " + (_named(event.text, names) if event.kind in COMPOSED_EVENTS else event.text)
    return f"{_event_words(event)}{by}{text}"


def timeline_markdown(
    incident: Incident,
    events: list[IncidentEvent],
    *,
    names: dict[str, str],
    max_chars: int | None = None,
) -> str:
    """The timeline as Markdown for a postmortem document, ready for a Slack code block.

    Outside text is kept as written (a link in a note stays text); the whole
    document goes through code_block_text, so nothing in it can close the
    ``` block it is shown in nor act as Slack markup. `max_chars`: its most, kept
    by leaving out the oldest events (a line says how many).
    """
    lines = _timeline_lines(incident, events, names=names, max_chars=max_chars)
    return code_block_text("\n".join(lines))


def _timeline_lines(
    incident: Incident,
    events: list[IncidentEvent],
    *,
    names: dict[str, str],
    changes: Sequence[tuple[datetime, str]] = (),
    max_chars: int | None = None,
) -> list[str]:
    """The incident's facts and its timeline table (with `changes` among the events);
    `max_chars`: their most once through code_block_text, the oldest rows left out."""
    state = _state(incident)
    lines = [
        f"## Incident #{incident.id}: {_cell(incident.title)}",
        "",
        f"- Status: {STATE_WORD.get(state, state)} ({incident.status})",
        f"- Severity: {_cell(incident.severity)}",
        f"- Opened: {utc_text(incident.opened_at, seconds=True)}",
    ]
    if incident.resolved_at:
        took = duration((incident.resolved_at - incident.opened_at).total_seconds())
        lines.append(f"- Resolved: {utc_text(incident.resolved_at, seconds=True)} (after {took})")
    if incident.acknowledged_by:
        lines.append(f"- Acknowledged by: {_cell(_named(incident.acknowledged_by, names))}")
    pagerduty = pagerduty_link(incident)
    if pagerduty:
        lines.append(f"- PagerDuty: {pagerduty}")
    rows = [(event.at, _event_plain(event, names)) for event in events]
    rows += [(at, f"change: {_named(text, names)}") for at, text in changes]
    table = [
        f"| {utc_text(at, seconds=True)} | {_cell(text)} |"
        for at, text in sorted(rows, key=lambda row: row[0])
    ]
    head = ["", "| Time (UTC) | Event |", "| --- | --- |"]
    if max_chars is not None:
        # The newest rows that fit, after the facts, the table's head and the note below.
        used = len(code_block_text("\n".join(lines + head))) + 200
        kept = 0
        for row in reversed(table):
            used += len(code_block_text(row)) + 1
            if used > max_chars:
                break
            kept += 1
        if kept < len(table):
            left_out = len(table) - kept
            lines.append(f"- Timeline: the newest {kept} rows; {left_out} earlier left out")
            table = table[left_out:]
    return lines + head + table


def _acted(events: list[IncidentEvent], names: dict[str, str]) -> list[str]:
    """Who acted on the incident and what each did, in the order they first acted."""
    done: dict[str, list[str]] = {}
    for event in events:
        if not event.actor or event.actor == "opsbot":
            continue
        who = _named(event.actor, names)
        word = EVENT_WORDS.get(event.kind, event.kind.replace("_", " "))
        if word not in done.setdefault(who, []):
            done[who].append(word)
    return [f"- {_cell(who)}: {', '.join(words)}" for who, words in done.items()]


def postmortem_markdown(
    incident: Incident,
    events: list[IncidentEvent],
    *,
    names: dict[str, str],
    changes: list[tuple[datetime, str]],
    max_chars: int | None = None,
) -> str:
    """A postmortem draft in Markdown: summary, impact window, timeline with the changes
    before it, who acted, and the headings left to fill. Same rules as timeline_markdown;
    `max_chars`: its most, kept by leaving out the timeline's oldest rows, never the
    sections after it."""
    end = incident.resolved_at
    took = duration((end - incident.opened_at).total_seconds()) if end else None
    head = [
        f"# Postmortem (draft): incident #{incident.id}",
        "",
        "## Summary",
        "",
        f"{_cell(incident.title)} (severity {_cell(incident.severity)}, "
        f"route {_cell(incident.route_name)}).",
        "",
        "## Impact window",
        "",
        f"- Start: {utc_text(incident.opened_at, seconds=True)}",
        f"- End: {utc_text(end, seconds=True) + f' (after {took})' if end else 'still open'}",
        "",
        "## Timeline",
        "",
    ]
    tail = [
        "",
        "## Who acted",
        "",
        *(_acted(events, names) or ["- nobody but opsbot"]),
        "",
        "## What happened and why",
        "",
        "## What we change",
        "",
    ]
    budget = None
    if max_chars is not None:
        budget = max_chars - len(code_block_text("\n".join(head + tail))) - 2
    timeline = _timeline_lines(incident, events, names=names, changes=changes, max_chars=budget)
    return code_block_text("\n".join(head + timeline + tail))


def channel_events(events: list[IncidentEvent], *, incident_id: int) -> dict[str, Any]:
    """Timeline events shown in the incident's own channel, one line each: the newest
    that fit one message, after a note on how many earlier ones it leaves out."""
    lines = [f"{slack_date(e.at, seconds=True)} {clip(_event_text(e), 600)}" for e in events]
    # Room for the note on events left out.
    blocks, left_out = _newest_sections(
        lines, max_blocks=BLOCKS_MAX - 1, max_chars=MESSAGE_BUDGET - CONTEXT_MAX
    )
    text = _plain_lines(events[left_out:])
    if left_out:
        see = f"`/incident timeline {incident_id}` shows the timeline."
        blocks.insert(0, _note(_left_out(left_out, see=see)))
        text = f"{left_out} earlier events not shown; {text}"
    return {"text": text, "blocks": blocks}


def _plain_lines(events: list[IncidentEvent]) -> str:
    """The events as a notification's words: the newest that fit, when not all do."""
    kept: list[str] = []
    used = 100  # room for the ellipsis and the count of events left out before them
    for event in reversed(events):
        word = inert(_event_words(event), 200)
        used += len(word) + 2
        if used > TEXT_MAX:
            kept.append(ELLIPSIS)
            break
        kept.append(word)
    return "; ".join(reversed(kept))


def channel_intro(incident: Incident, *, by: str) -> str:
    """The thread reply saying where the incident is worked on now."""
    return (
        f":hash: {keep_mentions(by)} started {channel_ref(incident.slack_channel_id or '')} "
        f"for incident #{incident.id}: what happens there shows here too, and the other way."
    )
