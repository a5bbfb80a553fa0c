"""/dbrole check|provision <app> <env>: parse, hand over to bot/dbroles, answer.

Acknowledged at once (Slack's three seconds); the role-manager Lambda is invoked
after the ack, behind it (bot/after_ack.py), and the answer goes to the command's
response_url through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.apps.errors import AppError
from bot.dbroles import requests
from bot.dbroles.errors import DbRoleError
from bot.runtime import Runtime
from bot.slack_text import code
from handlers.command_text import Usage, parse_or_usage, slash_command
from handlers.replies import answer_after_ack
from handlers.routing import Routes

VERBS = ("check", "provision")


@dataclass(frozen=True)
class Command:
    verb: str  # check | provision | help
    app: str = ""
    env: str = ""


def parse(text: str) -> Command:
    words = (text or "").split()
    if not words or words[0] == "help":
        return Command("help")
    verb = words[0]
    if verb not in VERBS:
        raise Usage(f"`/dbrole` does not know {code(verb)}.")
    if len(words) != 3:
        raise Usage(
            f"`/dbrole {verb} &lt;app&gt; &lt;env&gt;` needs an app and an environment, "
            "nothing more."
        )
    return Command(verb, app=words[1], env=words[2])


def run(runtime: Runtime, command: Command, *, user_id: str, channel_id: str | None) -> str:
    """Do what a parsed command asks; return the answer for the person who typed it."""
    if command.verb == "check":
        return requests.check(runtime, app=command.app, env=command.env, actor=user_id)
    return requests.provision(
        runtime, app=command.app, env=command.env, actor=user_id, channel=channel_id
    )


def _listen(runtime: Runtime) -> Any:
    usage = commands.usage("/dbrole", runtime.config.commands.naming)

    def listen(ack: Ack, command: dict[str, Any]) -> None:
        parsed = parse_or_usage(ack, command.get("text"), parse, usage)
        if parsed is None:
            return
        doing = "Checking" if parsed.verb == "check" else "Provisioning"
        ack(
            text=f":hourglass_flowing_sand: {doing} the database roles of "
            f"{code(f'{parsed.app}/{parsed.env}')}…"
        )
        answer_after_ack(
            runtime,
            command,
            lambda user_id, channel_id: run(
                runtime, parsed, user_id=user_id, channel_id=channel_id
            ),
            refusals=(AppError, DbRoleError),
        )

    return listen


def register(routes: Routes, runtime: Runtime) -> None:
    slash_command(routes, runtime.config.commands.naming, "/dbrole")(_listen(runtime))
