"""A form answers only through a response_url on Slack's hooks host (here, the emulator's
host): one elsewhere, in the command or in the view's metadata, is dropped, so the
answer is never queued and the URL never contacted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from bot.modals import service
from bot.outbox.models import SLACK_RESPONSE, Delivery
from sandbox import slack_requests
from sandbox.slack_views import OpenView
from tests.flags.conftest import FlagWorld
from tests.modals.conftest import CHANNEL, Modals
from tests.support import RecordingServer, wait_for

STAGING = "api/staging"
FLIP: dict[str, str | None] = {
    service.TARGET: STAGING,
    service.FLAG_NAME: "APPLE_PAY",
    service.FLAG_VERB: "on",
}


@pytest.fixture
def listener() -> Iterator[RecordingServer]:
    server = RecordingServer()
    yield server
    server.stop()


def _foreign(listener: RecordingServer) -> str:
    # The listener, by a host that is not the emulator's: reachable, but not Slack's hooks.
    return listener.url.replace("127.0.0.1", "localhost") + "/commands/T0000/1/capability"


def _answers(modals: Modals) -> list[Delivery]:
    with modals.live.runtime.sessions() as db:
        return list(db.scalars(sa.select(Delivery).where(Delivery.kind == SLACK_RESPONSE)))


def _done(modals: Modals) -> bool:
    registry = modals.live.runtime.metrics.registry
    done = registry.get_sample_value("opsbot_modals_total", {"modal": "flag", "outcome": "done"})
    return bool(done)


def _open_flag_form(modals: Modals, response_url: str) -> OpenView:
    trigger = modals.slack.trigger_id(user="U0ALICE", channel=CHANNEL)
    body = slack_requests.slash_command(
        "/flag",
        "",
        user_id="U0ALICE",
        channel_id=CHANNEL,
        channel_name="alerts",
        response_url=response_url,
        trigger_id=trigger,
    )
    modals.post(body)
    views: list[OpenView] = wait_for(lambda: modals.slack.open_views("U0ALICE"))
    return views[0]


def test_a_command_whose_response_url_is_not_slacks_is_never_answered_there(
    modals: Modals, listener: RecordingServer, flag_world: FlagWorld
) -> None:
    view = _open_flag_form(modals, _foreign(listener))
    assert json.loads(view.view["private_metadata"])["response_url"] is None

    assert not modals.submit(view, FLIP)

    wait_for(lambda: flag_world.ssm_value("APPLE_PAY") == "true" and _done(modals))
    assert _answers(modals) == []
    assert listener.requests == []


def test_a_view_whose_metadata_names_a_foreign_response_url_is_never_answered_there(
    modals: Modals, listener: RecordingServer, flag_world: FlagWorld
) -> None:
    view = _open_flag_form(modals, modals.slack.response_url(channel=CHANNEL, user="U0ALICE"))
    forged = json.dumps({"channel": CHANNEL, "response_url": _foreign(listener)})

    assert not modals.submit(replace(view, view={**view.view, "private_metadata": forged}), FLIP)

    wait_for(lambda: flag_world.ssm_value("APPLE_PAY") == "true" and _done(modals))
    assert _answers(modals) == []
    assert listener.requests == []
