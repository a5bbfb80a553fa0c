"""The buttons of a pending action: confirm, approve, cancel (for any kind)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.approvals import flows
from bot.approvals.errors import ApprovalError
from bot.approvals.registry import DECISIONS
from bot.approvals.render import ACTION_IDS
from bot.runtime import Runtime
from handlers.replies import answer
from handlers.routing import Routes

log = logging.getLogger(__name__)


def _clicked(runtime: Runtime, decision: str) -> Callable[..., None]:
    def listen(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        # Only a forged click names no request: dropped here, before any work is queued.
        value = str(action.get("value") or "")
        action_id = commands.typed_id(value)
        if action_id is None:
            log.warning("%s clicked with %r", decision, value[:40])
            return
        runtime.after_ack.run(
            f"{decision} click",
            lambda: work(body, action_id),
            response_url=body.get("response_url"),
        )

    def work(body: dict[str, Any], action_id: int) -> None:
        user_id = str((body.get("user") or {}).get("id") or "")
        response_url = body.get("response_url")
        try:
            outcome = flows.click(runtime, action_id=action_id, user_id=user_id, decision=decision)
            text = outcome.text
        except ApprovalError as exc:
            text = str(exc)
        except Exception:
            log.exception("%s of request %s failed", decision, action_id)
            text = (
                "Something went wrong on the bot's side (it is logged); see the request's message."
            )
        answer(runtime, response_url=response_url, text=text)

    return listen


def register(routes: Routes, runtime: Runtime) -> None:
    for decision in DECISIONS:
        routes.action(ACTION_IDS[decision])(_clicked(runtime, decision))
