"""The buttons of a pending action: confirm, approve, cancel (for any kind)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack

from bot.approvals import flows
from bot.approvals.errors import ApprovalError
from bot.approvals.registry import DECISIONS
from bot.approvals.render import ACTION_IDS
from bot.runtime import Runtime
from handlers.replies import answer
from handlers.routing import Routes

log = logging.getLogger(__name__)


def _clicked(runtime: Runtime, decision: str) -> Callable[..., None]:
    def listen(ack: Ack, body: dict[str, Any]) -> None:
        ack()
        runtime.after_ack.run(
            f"{decision} click", lambda: work(body), response_url=body.get("response_url")
        )

    def work(body: dict[str, Any]) -> None:
        user_id = str((body.get("user") or {}).get("id") or "")
        actions = body.get("actions") or [{}]
        response_url = body.get("response_url")
        try:
            action_id = int(str(actions[0].get("value") or ""))
        except ValueError:
            answer(runtime, response_url=response_url, text="That button carries no request id.")
            return
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
