"""/opsbot: help and housekeeping (linking your PagerDuty user)."""

from __future__ import annotations

import re
from typing import Any

from slack_bolt import Ack, App

from bot.config import EMAIL
from bot.outbox.replies import Replies, ephemeral
from bot.pagerduty.errors import PagerDutyError
from bot.people.errors import NoPagerDutyUser
from bot.runtime import Runtime
from bot.slack_text import code, escape

USAGE = "\n".join(
    [
        "*opsbot* — incidents and releases from Slack",
        "`/opsbot help` — this message",
        "`/opsbot link-pagerduty <email>` — act in PagerDuty as the user with this email",
        "`/opsbot link-pagerduty` — show who you are in PagerDuty; "
        "`/opsbot unlink-pagerduty` — forget the link",
        "`/oncall [team or schedule]` — who is on call; `/incident help` — incidents",
        "Alarms arrive by themselves: CloudWatch → SNS → opsbot → this workspace and PagerDuty.",
    ]
)
LINK_USAGE = "Usage: `/opsbot link-pagerduty you@example.com`"
MAILTO = re.compile(r"^<mailto:([^|>]+)(\|[^>]*)?>$")


def usage(problem: str | None = None) -> str:
    return f"{problem}\n\n{USAGE}" if problem else USAGE


def email_argument(word: str) -> str:
    """Slack may send an email as `<mailto:a@b.c|a@b.c>`."""
    found = MAILTO.match(word)
    return found.group(1) if found else word


def register(app: App, runtime: Runtime) -> None:
    replies = Replies(sessions=runtime.sessions, clock=runtime.clock)
    people = runtime.people

    def link(user_id: str, email: str | None) -> str:
        if email is None:
            current = people.current_link(user_id)
            if current is None:
                return f"opsbot has not matched you to a PagerDuty user yet. {LINK_USAGE}"
            user, linked = current
            how = "linked by you" if linked else "found by your Slack email"
            return f"You act in PagerDuty as *{escape(user.name)}* ({code(user.email)}), {how}."
        try:
            user = people.link(user_id, email)
        except NoPagerDutyUser as exc:
            return f"{exc} {LINK_USAGE}"
        except PagerDutyError as exc:
            said = escape(exc)
            return f"opsbot cannot check that with PagerDuty right now ({said}). Try again later."
        return (
            f":link: Linked: you act in PagerDuty as *{escape(user.name)}* ({code(user.email)}). "
            "This wins over the lookup by your Slack email."
        )

    def unlink(user_id: str, response_url: str) -> None:
        removed = people.unlink(user_id)
        text = (
            "Unlinked: opsbot looks you up in PagerDuty by your Slack email again."
            if removed
            else "You had no PagerDuty link."
        )
        replies.send(response_url, ephemeral(text))

    @app.command("/opsbot")
    def opsbot(ack: Ack, command: dict[str, Any]) -> None:
        words = (command.get("text") or "").split()
        if not words or words[0] == "help":
            ack(text=usage())
            return
        user_id = str(command.get("user_id"))
        if words[0] == "link-pagerduty":
            email = email_argument(words[1]) if len(words) > 1 else None
            if len(words) > 2 or (email is not None and not EMAIL.match(email)):
                ack(text=f"{code(' '.join(words[1:]))} is not one email address. {LINK_USAGE}")
                return
            ack()
            runtime.after_ack.run(
                "/opsbot link-pagerduty",
                lambda: replies.send(command["response_url"], ephemeral(link(user_id, email))),
                response_url=command.get("response_url"),
            )
            return
        if words[0] == "unlink-pagerduty":
            ack()
            runtime.after_ack.run(
                "/opsbot unlink-pagerduty",
                lambda: unlink(user_id, command["response_url"]),
                response_url=command.get("response_url"),
            )
            return
        ack(text=usage(f"Unknown subcommand {code(words[0])}."))
