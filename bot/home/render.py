"""The App Home tab as Block Kit: a pure function of what the viewer may see and do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.audit.models import AuditRecord
from bot.deploys.models import Deployment
from bot.incidents import render as incident_render
from bot.incidents.models import Incident
from bot.maintenance import render as maintenance_render
from bot.maintenance.models import MaintenanceWindow
from bot.slack_dates import slack_date
from bot.slack_text import CONTEXT_MAX, SECTION_MAX, clip, code, inert

BLOCKS_MAX = 100  # a Home view holds up to 100 blocks
INCIDENTS_SHOWN = 15
ROWS_SHOWN = 20
NOT_DONE_MAX = 500  # of PagerDuty's words about a failed click
# Opens the maintenance window form (handlers/modals.py); the form checks the right.
PLAN_WINDOW = "opsbot.home.plan_window"


@dataclass(frozen=True)
class HomeIncident:
    incident: Incident
    link: str | None  # the incident's message in Slack
    may_respond: bool  # Acknowledge and Resolve buttons


@dataclass(frozen=True)
class HomeWindow:
    window: MaintenanceWindow
    may_end: bool


@dataclass
class HomeContent:
    viewer: str
    now: datetime
    incidents: list[HomeIncident] = field(default_factory=list)
    more_incidents: int = 0
    oncall: list[dict[str, Any]] = field(default_factory=list)  # the /oncall answer's blocks
    # Today's deploys and flag changes: a section never shown to a guest.
    shows_today: bool = True
    deploys: list[Deployment] = field(default_factory=list)
    flag_changes: list[AuditRecord] = field(default_factory=list)
    pagerduty: str | None = None  # the viewer's linked PagerDuty identity, as text
    windows: list[HomeWindow] = field(default_factory=list)
    refusals: list[AuditRecord] = field(default_factory=list)  # the viewer's clicks not done


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": text}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": clip(text, SECTION_MAX)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(text, CONTEXT_MAX)}]}


def _button(action_id: str, text: str, value: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }


def _incident_blocks(item: HomeIncident, now: datetime) -> list[dict[str, Any]]:
    incident = item.incident
    line = incident_render.list_line(incident, now=now)
    if item.link:
        line += f" · <{item.link}|open the message>"
    blocks = [_section(line)]
    elements: list[dict[str, Any]] = []
    if item.may_respond and incident.acknowledged_at is None:
        elements.append(_button(incident_render.ACKNOWLEDGE, "Acknowledge", str(incident.id)))
    if item.may_respond:
        elements.append(_button(incident_render.RESOLVE, "Resolve", str(incident.id)))
    if elements:
        blocks.append(
            {"type": "actions", "block_id": f"home:incident:{incident.id}", "elements": elements}
        )
    return blocks


def _deploy_line(deployment: Deployment) -> str:
    version = inert(deployment.tag or deployment.digest[:19], 80)
    who = (
        f"<@{deployment.actor}>"
        if deployment.actor.startswith(("U", "W"))
        else code(deployment.actor)
    )
    return (
        f"• {slack_date(deployment.created_at)} {deployment.kind} {code(deployment.label)} "
        f"{code(version)} by {who}: {deployment.status}"
    )


def _flag_line(record: AuditRecord) -> str:
    detail = record.detail or {}
    who = f"<@{record.actor}>" if record.actor.startswith(("U", "W")) else code(record.actor)
    flag = code(str(detail.get("flag") or "?"))
    where = code(record.target.removeprefix("flag:"))
    asked = inert(str(detail.get("asked") or ""), 200)
    return f"• {slack_date(record.at)} {flag} on {where}: {asked} by {who}"


def _not_done_line(record: AuditRecord) -> str:
    detail = record.detail or {}
    when = f"({slack_date(record.at)}, {code(record.action)})"
    if record.outcome == "failed":
        # Allowed, then refused by PagerDuty: its words are outside text.
        error = inert(str(detail.get("error") or "no reason given"), NOT_DONE_MAX)
        return f":warning: Failed {when}: {error}"
    # A refusal's reason is opsbot's own answer text, already written as mrkdwn for Slack.
    return f":no_entry: Not done {when}: {detail.get('reason') or 'refused'}"


def home_view(content: HomeContent) -> dict[str, Any]:
    """The Home tab for `content.viewer`."""
    now = content.now
    blocks: list[dict[str, Any]] = [
        _header("opsbot"),
        _context(f"As of {slack_date(now)} · `/opsbot help` lists what you may do"),
        *(_section(_not_done_line(r)) for r in content.refusals),
        _header(f"Open incidents ({len(content.incidents) + content.more_incidents})"),
    ]
    if not content.incidents:
        blocks.append(_section("No open incident that you can see."))
    for item in content.incidents[:INCIDENTS_SHOWN]:
        blocks.extend(_incident_blocks(item, now))
    if content.more_incidents or len(content.incidents) > INCIDENTS_SHOWN:
        hidden = content.more_incidents + max(0, len(content.incidents) - INCIDENTS_SHOWN)
        blocks.append(_context(f"… and {hidden} more: `/incident list`"))

    blocks.append(_header("On call"))
    blocks.extend(content.oncall or [_section("On-call is not available.")])

    if content.shows_today:
        blocks.append(_header("Today"))
        deploys = [_deploy_line(d) for d in content.deploys[:ROWS_SHOWN]]
        flags = [_flag_line(r) for r in content.flag_changes[:ROWS_SHOWN]]
        none = "_none that you can see_"
        blocks.append(_section("*Deploys and rollbacks*\n" + ("\n".join(deploys) or none)))
        blocks.append(_section("*Flag changes*\n" + ("\n".join(flags) or none)))

    blocks.append(_header("Maintenance windows"))
    if not content.windows:
        blocks.append(_section("No maintenance window is in force or planned."))
    plan = _button(PLAN_WINDOW, "Plan a maintenance window…", "silence")
    blocks.append({"type": "actions", "block_id": "home:plan_window", "elements": [plan]})
    blocks.extend(
        maintenance_render.window_blocks(
            [w.window for w in content.windows],
            now=now,
            may_end=lambda window: any(w.may_end for w in content.windows if w.window is window),
        )
    )

    blocks.append(_header("You in PagerDuty"))
    blocks.append(
        _section(
            content.pagerduty
            or "Not matched yet: opsbot finds you in PagerDuty by your Slack email the first "
            "time you act. `/opsbot link-pagerduty` says how you are linked."
        )
    )
    if len(blocks) > BLOCKS_MAX:
        blocks = [*blocks[: BLOCKS_MAX - 1], _context("… (cut to fit Slack)")]
    return {"type": "home", "blocks": blocks}
