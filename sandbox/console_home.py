"""The console's App Home tab: open it as someone, show the view opsbot published, click in it.

Kept apart from sandbox/console.py: opening Home sends a signed
`app_home_opened` event to /slack/events as Slack would, and a click sends the
`block_actions` Slack sends from a Home tab (no channel, no response_url).
"""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from sandbox import slack_requests
from sandbox.slack import SlackEmulator
from sandbox.slack_home import app_home_opened, home_block_action

_event_ids = itertools.count(1)


class ConsoleHomeError(Exception):
    """Bad input from the console: the message says what."""


class ConsoleHome:
    def __init__(self, *, slack: SlackEmulator, signing_secret: str, service_url: str) -> None:
        self.slack = slack
        self.signing_secret = signing_secret
        self.service_url = service_url

    def _post(self, body: str, content_type: str) -> httpx.Response:
        headers = slack_requests.signed_headers(
            self.signing_secret, body, content_type=content_type
        )
        return httpx.post(
            f"{self.service_url}/slack/events", content=body, headers=headers, timeout=30
        )

    def _user(self, user_id: str) -> str:
        if user_id not in self.slack.users:
            raise ConsoleHomeError(f"no user {user_id!r} in the sandbox")
        return user_id

    def view(self, user_id: str) -> dict[str, Any]:
        """The Home view last published to `user_id` (`view` None: never opened)."""
        return {"view": self.slack.home_of(self._user(user_id))}

    def open(self, user_id: str) -> dict[str, Any]:
        body = app_home_opened(self._user(user_id), event_id=f"EvCONSOLEHOME{next(_event_ids)}")
        answer = self._post(body, slack_requests.JSON)
        return {"status": answer.status_code}

    def click(
        self, user_id: str, *, action_id: str, value: str | None, block_id: str
    ) -> dict[str, Any]:
        view = self.slack.home_of(self._user(user_id))
        if view is None:
            raise ConsoleHomeError("open App Home first")
        # A trigger as Slack gives each click: a button may open a modal with it.
        trigger = self.slack.trigger_id(user=user_id)
        body = home_block_action(
            action_id, value, user_id=user_id, view=view, block_id=block_id, trigger_id=trigger
        )
        answer = self._post(body, slack_requests.FORM)
        return {"status": answer.status_code}
