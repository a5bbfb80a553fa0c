"""/flag: parse, hand over to bot/flags, answer.

Acknowledged at once (Slack's three seconds) and worked on after the ack;
the answer goes to the command's response_url through the outbox, the
public side (announcements, progress, confirmations) to the release channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.apps.errors import AppError
from bot.changes import guard
from bot.deploys.errors import DeployError
from bot.flags import flows
from bot.flags.errors import FlagError
from bot.flags.requests import OFF, ON, SET, Change
from bot.runtime import Runtime
from handlers.command_text import Usage, command_words, echoed, parse_or_usage, slash_command
from handlers.replies import answer_after_ack
from handlers.routing import Routes


@dataclass(frozen=True)
class Command:
    verb: str  # list | on | off | set | help
    app: str = ""
    env: str = ""
    flag: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def parse_attributes(words: list[str]) -> dict[str, str]:
    """`name=value` words as attributes; Usage names the first word that is not one."""
    attributes: dict[str, str] = {}
    for word in words:
        name, equals, value = word.partition("=")
        if not equals or not name:
            raise Usage(f"{echoed(word)} is not `<attribute>=<value>`.")
        attributes[name] = value
    return attributes


def parse(text: str) -> Command:
    words = command_words(text)
    if not words or words[0] == "help":
        return Command("help")
    verb = words[0].lower()
    if verb == "list":
        if len(words) != 3:
            raise Usage("`/flag list &lt;app&gt; &lt;env&gt;`.")
        return Command(verb, app=words[1], env=words[2])
    if verb in (ON, OFF):
        if len(words) != 4:
            raise Usage(f"`/flag {verb} &lt;app&gt; &lt;env&gt; &lt;flag&gt;`.")
        return Command(verb, app=words[1], env=words[2], flag=words[3])
    if verb == SET:
        if len(words) < 5:
            raise Usage(
                "`/flag set &lt;app&gt; &lt;env&gt; &lt;flag&gt; &lt;attribute&gt;=&lt;value&gt;`."
            )
        attributes = parse_attributes(words[4:])
        return Command(verb, app=words[1], env=words[2], flag=words[3], attributes=attributes)
    raise Usage(f"{echoed(f'/flag {words[0]}')} is not a /flag command.")


def run(
    runtime: Runtime, command: Command, *, user_id: str, channel_id: str | None
) -> str | dict[str, Any]:
    """Do what a parsed command asks; return the answer for the person who typed it.

    A change while an incident is open on the app environment is asked about
    first (bot/changes/guard.py): the answer is then a question.
    """
    if command.verb == "list":
        return flows.list_flags(runtime, app=command.app, env=command.env)
    if command.verb in (ON, OFF, SET):
        change = Change(
            app=command.app,
            env=command.env,
            actor=user_id,
            verb=command.verb,
            flag=command.flag,
            attributes=dict(command.attributes),
            channel=channel_id,
        )
        asked = guard.flag(runtime, change)
        return asked.body if isinstance(asked, guard.Question) else asked
    return commands.usage("/flag", runtime.config.commands.naming)


def _listen(runtime: Runtime) -> Any:
    naming = runtime.config.commands.naming
    usage = commands.usage("/flag", naming)

    def listen(ack: Ack, command: dict[str, Any]) -> None:
        parsed = parse_or_usage(ack, command.get("text"), parse, usage)
        if parsed is None:
            return
        if parsed.verb == "list":
            ack()
        else:
            label = echoed(f"{parsed.app}/{parsed.env}")
            ack(text=f":hourglass_flowing_sand: Checking {echoed(parsed.flag)} of {label}…")
        answer_after_ack(
            runtime,
            command,
            lambda user_id, channel_id: run(
                runtime, parsed, user_id=user_id, channel_id=channel_id
            ),
            refusals=(AppError, FlagError, DeployError),
            hint=f"Check `{naming.render('/flag list')}`.",
        )

    return listen


def register(routes: Routes, runtime: Runtime) -> None:
    slash_command(routes, runtime.config.commands.naming, "/flag")(_listen(runtime))
