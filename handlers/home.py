"""App Home (`app_home_opened`) and the End buttons of maintenance windows.

Each acknowledges first; the work runs behind the ack (bot/after_ack.py). The
End button is authorized again in bot/maintenance, wherever it was shown.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack

from bot import commands
from bot.home.service import FROM_HOME, click_via
from bot.incidents.actions import Requester
from bot.maintenance import render as maintenance_render
from bot.runtime import Runtime
from handlers.routing import Routes

log = logging.getLogger(__name__)


def register(routes: Routes, runtime: Runtime) -> None:
    @routes.event("app_home_opened")
    def home_opened(event: dict[str, Any]) -> None:
        refresher = runtime.home
        user_id = str(event.get("user") or "")
        if refresher is None or event.get("tab", "home") != "home" or not user_id:
            return
        if not (user_id.startswith(("U", "W")) and user_id.isalnum() and len(user_id) <= 32):
            log.warning("app_home_opened without a user id")
            return

        def publish() -> None:
            refresher.opened(user_id)

        runtime.after_ack.run("App Home", publish, response_url=None)

    @routes.action(maintenance_render.END)
    def end_window(ack: Ack, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        windows = runtime.maintenance
        value = str(action.get("value") or "")
        user = body.get("user") or {}
        user_id = user.get("id") if isinstance(user, dict) else None
        # Only a forged click names no window: dropped here, before any work is queued.
        window_id = commands.typed_id(value)
        if windows is None or window_id is None or not user_id:
            log.warning("maintenance End clicked with %r", value[:40])
            return
        requester = Requester(
            slack_user_id=str(user_id),
            via=click_via(body),
            response_url=body.get("response_url"),
            clicked_at=runtime.clock.now(),
        )

        def end() -> None:
            windows.end(window_id=window_id, requester=requester)
            if runtime.home is not None and requester.via == FROM_HOME:
                runtime.home.clicked(str(user_id))

        runtime.after_ack.run("maintenance End button", end, response_url=body.get("response_url"))
