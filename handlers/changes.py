"""The undo buttons of "Changes before this alarm" on incident messages, and the
Continue/Cancel of "#42 is open; deploy anyway?".

Each click is acknowledged at once; the work runs after the ack
(bot/changes/flows.py, bot/changes/guard.py), and the person hears back through
the click's response_url, refusals included.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack

from bot.approvals.render import ephemeral
from bot.apps.errors import AppError
from bot.changes import guard
from bot.changes.errors import QuestionRefused, UndoRefused
from bot.changes.flows import undo
from bot.changes.render import UNDO, UNDO_PATTERN
from bot.deploys.errors import DeployError
from bot.flags.errors import FlagError
from bot.runtime import Runtime
from handlers.replies import answer
from handlers.routing import Routes

log = logging.getLogger(__name__)

VALUE = re.compile(r"^([0-9]{1,12}):((deploy|flag):[0-9]{1,12})$")


def register(routes: Routes, runtime: Runtime) -> None:
    @routes.action(re.compile(UNDO_PATTERN))
    def undo_clicked(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        response_url = body.get("response_url")
        user_id = str((body.get("user") or {}).get("id") or "")
        value = str(action.get("value") or "")
        found = VALUE.match(value)
        if found is None or action.get("action_id") != f"{UNDO}:{found.group(2)}" or not user_id:
            log.warning("undo button sent %r", value[:80])
            runtime.after_ack.run(
                "undo click",
                lambda: answer(
                    runtime, response_url=response_url, text="That button names no change."
                ),
                response_url=response_url,
            )
            return
        incident_id, key = int(found.group(1)), found.group(2)

        kind = "rollback" if key.startswith("deploy:") else "flag"

        def work() -> None:
            try:
                answered = undo(runtime, incident_id=incident_id, key=key, user_id=user_id)
                text, outcome = answered.text, answered.outcome
            except UndoRefused as exc:
                text, outcome = str(exc), exc.outcome
            except Exception:
                log.exception("undo of %s on incident %s failed", key, incident_id)
                # It failed somewhere between the gates and the record of what AWS did:
                # the change may have started (an AppConfig deployment, a rollback).
                check = "`/flag list`" if kind == "flag" else "`/deploy status`"
                text = (
                    "Something went wrong on the bot's side (it is logged); part of it may have "
                    f"been done: check {check} and the incident's message before trying again."
                )
                outcome = "failed"
            runtime.metrics.undo(kind, outcome)
            log.info(
                "undo click on incident %s: %s %s",
                incident_id,
                key,
                outcome,
                extra={
                    "incident": incident_id,
                    "slack_user": user_id,
                    "change": key,
                    "kind": kind,
                    "outcome": outcome,
                },
            )
            answer(runtime, response_url=response_url, text=text)

        runtime.after_ack.run("undo click", work, response_url=response_url)

    @routes.action(re.compile(guard.ACTION_PATTERN))
    def question_answered(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        response_url = body.get("response_url")
        user_id = str((body.get("user") or {}).get("id") or "")
        channel = (body.get("channel") or {}).get("id")
        value = str(action.get("value") or "")
        go = action.get("action_id") == guard.CONTINUE

        def work() -> None:
            try:
                text = guard.answer(
                    runtime,
                    value=value,
                    user_id=user_id,
                    channel=str(channel) if channel else None,
                    go=go,
                )
            except (QuestionRefused, AppError, DeployError, FlagError) as exc:
                text = str(exc)
            except Exception:
                log.exception("a change question's answer failed")
                text = "Something went wrong on the bot's side (it is logged)."
            reply = {**ephemeral(text), "replace_original": True}  # the buttons go
            answer(runtime, response_url=response_url, text=text, body=reply)

        runtime.after_ack.run("change question", work, response_url=response_url)
