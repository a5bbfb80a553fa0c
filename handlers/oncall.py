"""`/oncall [team or schedule]`, and `@opsbot oncall [team]` in a thread."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.inbound.receipts import SlackEventReceipts
from bot.runtime import Runtime
from bot.slack_text import unescape
from handlers.command_text import slash_command
from handlers.routing import Routes

ONCALL_WORDS = re.compile(r"\b(on[ -]?call|oncall)\b[?!.]*\s*(.*)$", re.IGNORECASE)
MENTION = re.compile(r"<@[UW][A-Z0-9]+>")


def mention_help(naming: commands.Naming) -> str:
    """What a mention that asks nothing is answered, with the commands as Slack names them."""
    return (
        f"Ask me `@opsbot oncall [team or schedule]`, or use `{naming.render('/oncall')}`, "
        f"`{naming.render('/incident help')}` and `{naming.render('/opsbot help')}`."
    )


def mention_question(text: str) -> tuple[bool, str | None]:
    """Whether a mention asks who is on call, and for what (None: the default)."""
    found = ONCALL_WORDS.search(MENTION.sub(" ", text))
    if found is None:
        return False, None
    rest = found.group(2).strip().strip("?").strip()
    rest = re.sub(r"^(for|of)\s+", "", rest, flags=re.IGNORECASE)
    # Slack sends a message's `&`, `<` and `>` as entities (a slash command's text is
    # decoded where it is admitted; an event's is not): the name is looked up as typed.
    return True, unescape(rest) or None


def register(routes: Routes, runtime: Runtime, receipts: SlackEventReceipts) -> None:
    answers = runtime.oncall
    naming = runtime.config.commands.naming

    @slash_command(routes, naming, "/oncall")
    def oncall(ack: Ack, command: dict[str, Any]) -> None:
        name = (command.get("text") or "").strip() or None
        if name == "help":
            ack(text=commands.usage("/oncall", naming))
            return
        ack()
        runtime.after_ack.run(
            "/oncall",
            lambda: answers.respond(name=name, response_url=command["response_url"]),
            response_url=command.get("response_url"),
        )

    @routes.event("app_mention")
    def mentioned(body: dict[str, Any], event: dict[str, Any]) -> None:
        event_id = str(body.get("event_id") or "")
        with receipts.processing(event_id):
            asks, name = mention_question(str(event.get("text") or ""))
            key = f"mention:{event_id or event.get('ts')}"
            thread_ts = str(event.get("thread_ts") or event.get("ts"))
            channel = str(event.get("channel"))
            if asks:
                answers.post(
                    key=key, channel=channel, message=answers.message(name), thread_ts=thread_ts
                )
            else:
                answers.post(
                    key=key,
                    channel=channel,
                    message={"text": mention_help(naming), "blocks": None},
                    thread_ts=thread_ts,
                )
