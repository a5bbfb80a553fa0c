"""The sandbox console's App Home: opened as Slack would, rendered from views.publish, clickable."""

from __future__ import annotations

from bot.maintenance import render as maintenance_render
from bot.settings import Settings
from sandbox.console_home import ConsoleHome, ConsoleHomeError
from sandbox.slack import SlackEmulator
from tests.conftest import SLACK_SIGNING_SECRET
from tests.incidents.helpers import command, responses_to
from tests.support import LiveService, wait_for


def test_the_console_opens_home_shows_the_view_and_its_end_button_ends_the_window(
    service: LiveService, slack: SlackEmulator, settings: Settings
) -> None:
    home = ConsoleHome(slack=slack, signing_secret=SLACK_SIGNING_SECRET, service_url=service.url)
    assert home.view("U0ALICE") == {"view": None}
    url = slack.response_url()
    command(service, "/incident", "silence prod for 1h reason drill", response_url=url)
    wait_for(lambda: responses_to(slack, url))

    assert home.open("U0ALICE") == {"status": 200}
    view = wait_for(lambda: home.view("U0ALICE")["view"])
    assert view["type"] == "home" and "#1 route `prod`" in str(view["blocks"])

    assert home.click("U0ALICE", action_id=maintenance_render.END, value="1", block_id="b") == {
        "status": 200
    }
    # The window ends, and the Home of whoever clicked is published again without it.
    wait_for(lambda: "No maintenance window" in str(home.view("U0ALICE")["view"]))

    try:
        home.view("U0NOBODY")
    except ConsoleHomeError as exc:
        assert "no user" in str(exc)
    else:
        raise AssertionError("an unknown user was accepted")
