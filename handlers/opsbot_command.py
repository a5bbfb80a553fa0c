"""/opsbot: help and housekeeping (your PagerDuty identity)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.command_rights import rights_held
from bot.config import EMAIL
from bot.outbox.replies import Replies, ephemeral
from bot.people.links import PagerDutyLinks
from bot.runtime import Runtime
from bot.slack_text import code
from handlers import ops_status
from handlers.command_text import slash_command
from handlers.routing import Routes

OWN = commands.command_named(commands.OWN)
MAILTO = re.compile(r"^<mailto:([^|>]+)(\|[^>]*)?>$")
USER_MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(\|[^>]*)?>$")


def email_argument(word: str) -> str:
    """Slack may send an email as `<mailto:a@b.c|a@b.c>`."""
    found = MAILTO.match(word)
    return found.group(1) if found else word


def _subject(words: list[str]) -> tuple[str | None, list[str]]:
    """A leading `@someone` (as Slack escapes it: `<@U123|name>`) and the words after it."""
    if words and (found := USER_MENTION.match(words[0])):
        return found.group(1), words[1:]
    return None, words


def register(routes: Routes, runtime: Runtime) -> None:
    naming = runtime.config.commands.naming
    replies = Replies(sessions=runtime.sessions, clock=runtime.clock)
    links = PagerDutyLinks(
        sessions=runtime.sessions,
        people=runtime.people,
        rights=runtime.rights,
        workspace=runtime.rights.workspace,
        clock=runtime.clock,
    )

    def answer_later(command: dict[str, Any], verb: str, work: Any) -> None:
        url = command.get("response_url")
        runtime.after_ack.run(
            f"/opsbot {verb}",
            lambda: replies.send(url, ephemeral(work())) if url else work(),
            response_url=url,
        )

    def help_for(user_id: str) -> str:
        held = rights_held(
            user_id=user_id, config=runtime.config, rights=runtime.rights, access=runtime.access
        )
        return commands.help_text(held.rights, naming, unsure=held.unsure)

    link_usage = OWN.usage_of("link-pagerduty", naming)
    unlink_usage = OWN.usage_of("unlink-pagerduty", naming)

    @slash_command(routes, naming, commands.OWN)
    def opsbot(ack: Ack, command: dict[str, Any]) -> None:
        words = (command.get("text") or "").split()
        user_id = str(command.get("user_id"))
        if not words or words[0] == "help":
            # Rights may need Slack's answers (guest, user groups): after the ack.
            ack()
            answer_later(command, "help", lambda: help_for(user_id))
            return
        verb, rest = words[0], words[1:]
        if verb == "link-pagerduty":
            subject, rest = _subject(rest)
            email = email_argument(rest[0]) if rest else None
            if len(rest) > 1 or (email is not None and not EMAIL.match(email)):
                ack(text=f"{code(' '.join(rest))} is not one email address.\n{link_usage}")
                return
            if email is None:
                if subject is not None:
                    ack(text=f"Say which email to link.\n{link_usage}")
                    return
                ack()
                answer_later(command, verb, lambda: links.show(user_id))
                return
            ack()
            answer_later(
                command,
                verb,
                lambda: links.link(requester=user_id, email=email, for_user=subject),
            )
            return
        if verb == "status":
            ack()
            ops_status.answer(runtime, user_id=user_id, response_url=command.get("response_url"))
            return
        if verb == "unlink-pagerduty":
            subject, rest = _subject(rest)
            if rest:
                ack(text=unlink_usage)
                return
            ack()
            answer_later(command, verb, lambda: links.unlink(requester=user_id, for_user=subject))
            return
        ack(text=f"Unknown subcommand {code(words[0])}.\n\n{OWN.usage(naming)}")
