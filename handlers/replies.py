"""Answering the person who typed a command or clicked a button, through the outbox."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

from bot.approvals.render import ephemeral
from bot.commands import COMMANDS, Naming
from bot.outbox import service as outbox
from bot.runtime import Runtime

log = logging.getLogger(__name__)

# The only words of a command's text that may name its work: the table's subcommands.
_VERBS = frozenset(verb for command in COMMANDS for verb in command.verbs)


def answer(
    runtime: Runtime,
    *,
    response_url: str | None,
    text: str,
    body: dict[str, Any] | None = None,
) -> None:
    """An ephemeral answer via the request's response_url (retried by the outbox).

    `body`: a whole answer (blocks, replace_original) instead of `text` alone.
    """
    if not response_url:
        return
    order = hashlib.sha256(response_url.encode()).hexdigest()[:32]
    with runtime.sessions() as db_session:
        outbox.respond(
            db_session,
            response_url=response_url,
            body=body or ephemeral(text),
            order_key=f"slack-response:{order}",
            now=runtime.clock.now(),
        )
        db_session.commit()


def work_name(command: dict[str, Any], naming: Naming) -> str:
    """What a command's work is called in logs, in the journal of work owed and to its
    person: the Slack command (as `naming` names it) and its subcommand, from the
    table's words only. Nothing the person typed is in it: the journal stores it,
    and an answer shows it.
    """
    name = str(command.get("command") or "")
    if name not in naming.slack_names():
        name = "command"
    verb = next(iter(str(command.get("text") or "").split()), "")
    return f"{name} {verb}" if verb in _VERBS else name


def answer_after_ack(
    runtime: Runtime,
    command: dict[str, Any],
    work: Callable[[str, str | None], str | dict[str, Any]],
    *,
    refusals: tuple[type[Exception], ...],
    hint: str = "",
) -> None:
    """Queue a command's work behind its ack (bot/after_ack.py); answer its response_url.

    `work(user_id, channel_id)` returns the answer (text, or a whole answer body
    with buttons); one of `refusals` is the
    answer too (a right missing, an unknown app, ...). Anything else is a bug
    on our side: logged, and the person is told so, never left waiting.
    """
    what = work_name(command, runtime.config.commands.naming)

    def run() -> None:
        body: dict[str, Any] | None = None
        try:
            done = work(str(command.get("user_id") or ""), command.get("channel_id"))
            if isinstance(done, dict):
                body, text = done, str(done.get("text") or "")
            else:
                text = done
        except refusals as exc:
            text = str(exc)
        except Exception:
            log.exception("%s failed", what)
            text = " ".join(["Something went wrong on the bot's side (it is logged).", hint])
            text = text.strip()
        answer(runtime, response_url=command.get("response_url"), text=text, body=body)

    runtime.after_ack.run(what, run, response_url=command.get("response_url"))
