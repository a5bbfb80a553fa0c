"""Fixtures of the modal tests: the flag tests' moto world (ECR, ECS, AppConfig, SSM) and a driver.

`Modals` does what a person does in Slack: type a bare command (with a trigger
the Slack emulator minted), see the modal the bot opened there, search a
select, submit; each request is signed as Slack signs it and posted to the
live service, and the emulator does with the bot's answer what Slack does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.settings import Settings
from sandbox import slack_requests, slack_view_requests
from sandbox.slack import SlackEmulator
from sandbox.slack_views import OpenView
from tests.conftest import SLACK_SIGNING_SECRET
from tests.flags.conftest import (  # noqa: F401  # fixtures shared with the flag and deploy tests
    RELEASES,
    T0,
    FlagWorld,
    clock,
    flag_config,
    flag_world,
    live,
    make_runtime,
    releases,
    runtime,
    world,
)
from tests.support import LiveService, wait_for

CHANNEL = "C0ALERTS"
# A different timestamp per request: the same signature twice is refused as a replay.
_last_stamp = [0]


def _stamp() -> int:
    """A recent timestamp (within Slack's five minutes however long the suite runs), never
    the same twice."""
    _last_stamp[0] = max(_last_stamp[0] + 1, int(time.time()) - 120)
    return _last_stamp[0]


def modal_config(fw: FlagWorld) -> dict[str, Any]:
    """The flag tests' config; staging has a role manager; declaring on prod and holding
    its pages (for at most a day) are Alice's alone."""
    config = flag_config(fw)
    config["apps"]["api"]["environments"]["staging"]["dbrole"] = {"function": "api-roles"}
    config["alarm_routes"] = [
        {
            **config["alarm_routes"][0],
            "rights": {
                "declare": {"users": ["U0ALICE"]},
                "silence": {"users": ["U0ALICE"], "max_min": 1440},
            },
        },
        *config["alarm_routes"][1:],
    ]
    return config


@pytest.fixture
def aws_settings(settings: Settings, flag_world: FlagWorld) -> Settings:  # noqa: F811
    # The flag tests' AWS; a form waits for its outcome as long as a loaded test machine
    # may need, so a refusal always shows on its field (the wait's end has a test of its own).
    return settings.model_copy(
        update={"aws_endpoint_url": flag_world.front_door.url, "slack_form_wait_s": 60.0}
    )


@pytest.fixture
def app_config(flag_world: FlagWorld) -> Config:  # noqa: F811
    return parse_config(modal_config(flag_world))


@dataclass
class Opened:
    ack: Any  # the command's immediate answer
    response_url: str
    view: OpenView | None


class Modals:
    def __init__(self, service: LiveService, slack: SlackEmulator) -> None:
        self.live = service
        self.slack = slack

    def post(self, body: str) -> Any:
        headers = slack_requests.signed_headers(SLACK_SIGNING_SECRET, body, timestamp=_stamp())
        answer = self.live.post("/slack/events", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
        if answer.headers.get("content-type", "").startswith("application/json"):
            return answer.json()
        return answer.text or None

    def command(
        self,
        name: str,
        text: str = "",
        *,
        user: str = "U0ALICE",
        expire: bool = False,
        opens: bool = True,
    ) -> Opened:
        """Type a command; the modal it opened for `user` (waited for when it `opens`)."""
        before = {v.id for v in self.slack.open_views(user)}
        trigger = self.slack.trigger_id(user=user, channel=CHANNEL)
        if expire:
            self.slack.expire_trigger(trigger)
        url = self.slack.response_url(channel=CHANNEL, user=user)
        body = slack_requests.slash_command(
            name,
            text,
            user_id=user,
            channel_id=CHANNEL,
            channel_name="alerts",
            response_url=url,
            trigger_id=trigger,
        )
        ack = self.post(body)
        # Bolt answers when the listener returns; views.open follows in a thread of its own.
        if opens:
            wait_for(lambda: [v for v in self.slack.open_views(user) if v.id not in before])
        new = [v for v in self.slack.open_views(user) if v.id not in before]
        return Opened(ack=ack, response_url=url, view=new[-1] if new else None)

    def api_view(self, view: OpenView) -> dict[str, Any]:
        return view.as_api("T0000", "A0OPSBOT")

    def submit_state(self, view: OpenView, values: Any, *, user: str = "U0ALICE") -> Any:
        """Submit `view` with `values` as its raw `state.values`; apply the answer as Slack does."""
        body = slack_view_requests.view_submission(self.api_view(view), user_id=user, values=values)
        answer = self.post(body)
        self.slack.answer_submission(view.id, answer if isinstance(answer, dict) else None)
        return answer

    def submit(
        self, view: OpenView, answers: dict[str, str | None], *, user: str = "U0ALICE"
    ) -> Any:
        values = slack_view_requests.state_values(view.view, answers)
        return self.submit_state(view, values, user=user)

    def suggest(
        self, view: OpenView, action_id: str, typed: str, answers: dict[str, str | None]
    ) -> list[str]:
        body = slack_view_requests.block_suggestion(
            self.api_view(view),
            user_id=view.user,
            action_id=action_id,
            value=typed,
            values=slack_view_requests.state_values(view.view, answers),
        )
        answer = self.post(body)
        return [option["value"] for option in answer["options"]]

    def answered(self, url: str) -> str:
        path = "/" + url.split("://", 1)[1].split("/", 1)[1]
        found = wait_for(lambda: [r for r in self.slack.responses if r["url"] == path])
        return str(found[-1]["text"])


@pytest.fixture
def modals(live: LiveService, releases: SlackEmulator) -> Iterator[Modals]:  # noqa: F811
    yield Modals(live, releases)
