"""`/opsbot status` and its Retry buttons: opsbot's own health, from Slack.

The command and the button acknowledge at once; the work follows behind the
ack. A Retry click by anyone but an admin (`rights.admins`) is refused to them
alone, audited, and changes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.ops.render import RETRY_ACTION
from bot.runtime import Runtime
from handlers.routing import Routes

log = logging.getLogger(__name__)


def answer(runtime: Runtime, *, user_id: str, response_url: str | None) -> None:
    """What `/opsbot status` does after its ack."""
    status = runtime.ops_status
    if status is None or not response_url:
        return
    runtime.after_ack.run(
        "/opsbot status",
        lambda: status.show(user_id=user_id, response_url=response_url),
        response_url=response_url,
    )


def register(routes: Routes, runtime: Runtime) -> None:
    @routes.action(RETRY_ACTION)
    def retry(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        status = runtime.ops_status
        value = str(action.get("value") or "")
        user_id = str((body.get("user") or {}).get("id") or "")
        # Only a forged click names no delivery: dropped here, before any work is queued.
        delivery_id = commands.typed_id(value)
        if status is None or delivery_id is None or not user_id:
            log.warning("retry clicked with %r", value[:40])
            return
        response_url = body.get("response_url")

        def work() -> None:
            status.retry(user_id=user_id, delivery_id=delivery_id, response_url=response_url)

        runtime.after_ack.run("retry button", work, response_url=response_url)
