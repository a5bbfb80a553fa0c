"""The buttons on incident messages, and `/incident`.

Every listener acknowledges first (Slack allows three seconds) and then hands
over to bot/incidents; answers go back through the request's response_url,
which works in public and private channels and DMs alike, whether or not the
bot is a member.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.home.service import FROM_HOME, click_via
from bot.incidents import render
from bot.incidents.actions import (
    ACKNOWLEDGE,
    ESCALATE,
    NOTE,
    RESOLVE,
    SEVERITIES,
    Requester,
)
from bot.incidents.channels import IncidentChannels
from bot.incidents.errors import IncidentError
from bot.maintenance.errors import BadWindow
from bot.maintenance.requests import parse_window
from bot.maintenance.requests import window_id as window_id_of
from bot.outbox.replies import Replies, ephemeral
from bot.runtime import Runtime
from bot.slack_text import clip
from handlers.command_text import ECHO_MAX, echoed, slash_command
from handlers.routing import Routes

log = logging.getLogger(__name__)

INCIDENT = commands.command_named("/incident")
BUTTONS = {render.ACKNOWLEDGE: ACKNOWLEDGE, render.RESOLVE: RESOLVE, render.ESCALATE: ESCALATE}
NOTE_MAX = 3000


class Usage(Exception):
    """Bad input: the message says what was wrong; `subcommand` picks the usage line."""

    def __init__(self, problem: str, subcommand: str | None = None) -> None:
        super().__init__(problem)
        self.subcommand = subcommand

    def answer(self, naming: commands.Naming) -> str:
        if self.subcommand in INCIDENT.verbs:
            return f"{self}\n{INCIDENT.usage_of(self.subcommand, naming)}"
        return f"{self}\n\n{INCIDENT.usage(naming)}"


@dataclass(frozen=True)
class Command:
    name: str
    ref: str | None = None  # an incident: `42`, `#42`, or a PagerDuty id
    text: str | None = None
    severity: str | None = None
    route: str | None = None
    markdown: bool = False
    words: tuple[str, ...] | list[str] = ()  # `note`: everything after it


def _take_option(words: list[str], name: str) -> str | None:
    """Remove `--name VALUE` or `--name=VALUE` from `words`; its value, if given."""
    for i, word in enumerate(words):
        if word == f"--{name}":
            if i + 1 >= len(words) or words[i + 1].startswith("--"):
                raise Usage(f"`--{name}` needs a value.", "declare")
            value = words[i + 1]
            del words[i : i + 2]
            return value
        if word.startswith(f"--{name}="):
            del words[i]
            return word.split("=", 1)[1]
    return None


def parse(text: str) -> Command:
    """`/incident` text to a command; Usage says what is wrong with it."""
    words = text.split()
    if not words or words[0] == "help":
        return Command("help")
    name, rest = words[0].lower(), words[1:]
    if name == "list":
        if rest:
            raise Usage("`list` takes nothing after it.", "list")
        return Command("list")
    if name == "note":
        # In an incident's own channel the number may be left out: decided after the ack.
        if not rest:
            raise Usage("`note` needs an incident number and the text of the note.", "note")
        if len(rest) == 1 and re.match(r"^#?\d+$", rest[0]):
            raise Usage("`note` needs the text of the note.", "note")
        if len(" ".join(rest)) > NOTE_MAX:
            raise Usage(f"The note is too long ({NOTE_MAX:,} characters at most).", "note")
        return Command("note", ref=rest[0], text=" ".join(rest[1:]).strip() or None, words=rest)
    if name in ("ack", "acknowledge", "resolve", "timeline"):
        name = "ack" if name == "acknowledge" else name
        if not rest:
            raise Usage(f"`{name}` needs an incident number, e.g. `42`.", name)
        ref, tail = rest[0], " ".join(rest[1:]).strip()
        if not re.match(r"^#?[A-Za-z0-9]+$", ref):
            raise Usage(f"{echoed(ref)} is not an incident number, e.g. `42`.", name)
        if name == "ack" and tail:
            raise Usage("`ack` takes only the incident number.", "ack")
        if name == "timeline":
            if tail.lower() not in ("", "markdown", "md", "--markdown"):
                raise Usage(f"{echoed(tail)}: say `markdown` for Markdown, or nothing.", "timeline")
            return Command("timeline", ref=ref, markdown=bool(tail))
        # The resolution note goes to PagerDuty and the timeline as a note does.
        if len(tail) > NOTE_MAX:
            raise Usage(
                f"The resolution note is too long ({NOTE_MAX:,} characters at most).", "resolve"
            )
        return Command(name, ref=ref, text=tail or None)
    if name == "declare":
        severity = _take_option(rest, "severity")
        route = _take_option(rest, "route")
        stray = [w for w in rest if w.startswith("--")]
        if stray:
            raise Usage(f"Unknown option {echoed(stray[0])}.", "declare")
        if severity is not None and severity.lower() not in SEVERITIES:
            raise Usage(
                f"{echoed(severity)} is not a severity ({', '.join(SEVERITIES)}).", "declare"
            )
        summary = " ".join(rest).strip()
        if not summary:
            raise Usage("`declare` needs a summary of what is wrong.", "declare")
        if len(summary) > 1000:
            raise Usage("The summary is too long (1,000 characters at most).", "declare")
        return Command(
            "declare",
            text=summary,
            severity=severity.lower() if severity else None,
            route=route,
        )
    if name == "silences":
        if rest:
            raise Usage("`silences` takes nothing after it.", "silences")
        return Command("silences")
    if name == "silence":
        if not rest:
            raise Usage("`silence` needs a route or an alarm-name glob.", "silence")
        # Parsed with the clock by bot/maintenance/requests.py when it arrives.
        return Command("silence", text=" ".join(rest))
    raise Usage(f"Unknown subcommand {echoed(words[0])}.")


def _incident_id(value: str | None) -> int | None:
    """The incident a button's value names (`42`, `42:30m`); None when it names none."""
    return commands.typed_id((value or "").split(":", 1)[0])


def _requester(body: dict[str, Any], via: str, clicked_at: datetime | None = None) -> Requester:
    user = body.get("user") or {}
    user_id = user.get("id") if isinstance(user, dict) else None
    return Requester(
        slack_user_id=str(user_id or body.get("user_id")),
        via=via,
        response_url=body.get("response_url"),
        clicked_at=clicked_at,
    )


def _run(
    channels: IncidentChannels,
    replies: Replies,
    command: Command,
    requester: Requester,
    naming: commands.Naming,
    channel_id: str | None = None,
) -> None:
    """What a command does after its acknowledgement."""
    actions = channels.actions
    try:
        if command.name == "declare":
            assert command.text is not None
            declared = actions.declare(
                summary=command.text,
                severity=command.severity,
                route_name=command.route,
                requester=requester,
            )
            if declared is not None:
                channels.after_declare(incident_id=declared, requester=requester)
            return
        if command.name == "note":
            incident_id, text = channels.note_target(list(command.words), channel_id=channel_id)
            actions.request(incident_id=incident_id, action=NOTE, requester=requester, text=text)
            return
        assert command.ref is not None
        incident_id = actions.find_id(command.ref)
        if command.name == "timeline":
            actions.send_timeline(
                incident_id=incident_id, markdown=command.markdown, requester=requester
            )
            return
        action = {"ack": ACKNOWLEDGE, "resolve": RESOLVE}[command.name]
        actions.request(
            incident_id=incident_id, action=action, requester=requester, text=command.text
        )
    except IncidentError as exc:
        if requester.response_url:
            replies.send(
                requester.response_url, ephemeral(Usage(str(exc), command.name).answer(naming))
            )


def register(routes: Routes, runtime: Runtime) -> None:
    channels = runtime.incident_channels
    actions = channels.actions
    replies = Replies(sessions=runtime.sessions, clock=runtime.clock)

    def button(action_name: str) -> Any:
        def listener(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
            ack()
            clicked_at = runtime.clock.now()
            incident_id = _incident_id(action.get("value"))
            if incident_id is None:
                log.warning("%r clicked without an incident id", action.get("action_id"))
                return
            requester = _requester(body, click_via(body), clicked_at)

            def act() -> None:
                actions.request(incident_id=incident_id, action=action_name, requester=requester)
                home = runtime.home
                if requester.via == FROM_HOME and home is not None and requester.slack_user_id:
                    home.clicked(requester.slack_user_id)

            runtime.after_ack.run(
                f"{action_name} button", act, response_url=body.get("response_url")
            )

        listener.__name__ = f"incident_{action_name}_button"
        return listener

    for action_id, action_name in BUTTONS.items():
        routes.action(action_id)(button(action_name))

    @routes.action(render.START_CHANNEL)
    def start_channel(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        incident_id = _incident_id(action.get("value"))
        if incident_id is None:
            log.warning("start channel clicked without an incident id")
            return
        requester = _requester(body, "button", runtime.clock.now())
        runtime.after_ack.run(
            "start channel button",
            lambda: channels.start(incident_id=incident_id, requester=requester),
            response_url=body.get("response_url"),
        )

    @routes.action(render.SILENCE)
    def silence(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        value = str((action.get("selected_option") or {}).get("value") or action.get("value") or "")
        incident_id, choice = _incident_id(value), value.partition(":")[2]
        if incident_id is None or (
            choice not in render.SILENCE_CHOICES and choice != render.UNSILENCE
        ):
            log.warning("silence menu sent %r", value[:100])
            return
        # From a message or from App Home: the audit says which, as for the buttons.
        requester = _requester(body, click_via(body))

        def act() -> None:
            minutes = render.SILENCE_CHOICES.get(choice)
            actions.silence(incident_id=incident_id, minutes=minutes, requester=requester)
            home = runtime.home
            if requester.via == FROM_HOME and home is not None and requester.slack_user_id:
                home.clicked(requester.slack_user_id)

        runtime.after_ack.run("silence menu", act, response_url=body.get("response_url"))

    for link in render.LINK_ACTIONS:
        # Link buttons open a URL; Slack still tells the app, which must answer.
        routes.action(link)(lambda ack: ack())

    naming = runtime.config.commands.naming

    @slash_command(routes, naming, "/incident")
    def incident(ack: Ack, command: dict[str, Any]) -> None:
        try:
            parsed = parse(command.get("text") or "")
        except Usage as exc:
            ack(text=exc.answer(naming))
            return
        if parsed.name == "help":
            ack(text=INCIDENT.usage(naming))
            return
        if parsed.name in ("silence", "silences"):
            maintenance_command(ack, command, parsed)
            return
        if parsed.name == "list":
            ack()
            runtime.after_ack.run(
                "/incident list",
                lambda: list_open(_requester(command, "command")),
                response_url=command.get("response_url"),
            )
            return
        working = {
            "ack": f"Acknowledging {clip(parsed.ref or '', ECHO_MAX)}…",
            "resolve": f"Resolving {clip(parsed.ref or '', ECHO_MAX)}…",
            "note": "Adding the note…",
            "declare": "Declaring the incident…",
        }.get(parsed.name)
        if working:
            ack(text=working)
        else:
            ack()
        requester = _requester(command, "command")
        runtime.after_ack.run(
            f"/incident {parsed.name}",
            lambda: _run(channels, replies, parsed, requester, naming, command.get("channel_id")),
            response_url=command.get("response_url"),
        )

    def maintenance_command(ack: Ack, command: dict[str, Any], parsed: Command) -> None:
        """`/incident silence …` and `/incident silences`: maintenance windows."""
        windows = runtime.maintenance
        if windows is None:
            ack(text="Maintenance windows are not available here.")
            return
        requester = _requester(command, "command")
        if parsed.name == "silences":
            ack()
            runtime.after_ack.run(
                "/incident silences",
                lambda: windows.send_listing(requester),
                response_url=command.get("response_url"),
            )
            return
        words = (parsed.text or "").split()
        try:
            if words[0].lower() == "end":
                if len(words) != 2:
                    raise BadWindow("`silence end` takes the window's number, e.g. `3`.")
                window_id = window_id_of(words[1])
                ack(text=f"Ending maintenance window #{window_id}…")

                def end() -> None:
                    windows.end(window_id=window_id, requester=requester)

                runtime.after_ack.run(
                    "/incident silence end",
                    end,
                    response_url=command.get("response_url"),
                )
                return
            request = parse_window(words, now=runtime.clock.now())
        except BadWindow as exc:
            ack(text=Usage(str(exc), "silence").answer(naming))
            return
        ack(text="Making the maintenance window…")

        def create() -> None:
            windows.create(request=request, requester=requester)

        runtime.after_ack.run(
            "/incident silence",
            create,
            response_url=command.get("response_url"),
        )

    def list_open(requester: Requester) -> None:
        message = actions.open_incidents(requester)
        if requester.response_url:
            replies.send(requester.response_url, ephemeral(message["text"], message["blocks"]))
