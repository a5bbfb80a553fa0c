"""The windows listing holds what one Slack message can, and says how many it leaves out:
no window, nor its End button, disappears from it without a word."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from bot.maintenance import render
from bot.maintenance import service as windows
from bot.maintenance.models import MaintenanceWindow
from bot.slack_text import BLOCKS_MAX
from sandbox.slack import SlackEmulator
from tests.incidents.helpers import T0, command, responses_to
from tests.support import LiveService, wait_for


def planned(service: LiveService, count: int) -> None:
    """`count` windows on route `prod`, planned an hour apart from tomorrow."""
    with service.runtime.sessions() as db_session:
        for i in range(count):
            starts = T0 + timedelta(days=1, hours=i)
            windows.create(
                db_session, kind="route", pattern="prod", reason="upgrade",
                created_by="U0ALICE", starts_at=starts, ends_at=starts + timedelta(hours=1),
                now=T0,
            )  # fmt: skip
        db_session.commit()


def test_fifty_windows_fit_one_listing_that_counts_those_left_out(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start()
    planned(service, 50)
    url = slack.response_url()
    command(service, "/incident", "silences", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    blocks = answer["blocks"]
    text = str(blocks)
    assert len(blocks) <= BLOCKS_MAX
    assert "cut to fit Slack" not in text
    assert text.count(render.END) == render.LISTED  # each window shown keeps its button
    assert f"2 more windows are not shown: one message lists the {render.LISTED}" in text
    assert "Maintenance windows in force or planned: 50" in answer["text"]


def test_the_count_covers_windows_beyond_those_read() -> None:
    shown = [
        MaintenanceWindow(
            id=i + 1,
            kind="route",
            pattern=f"route-{i}",
            reason="upgrade",
            created_by="U0ALICE",
            starts_at=T0 + timedelta(hours=i),
            ends_at=T0 + timedelta(hours=i + 1),
        )
        for i in range(50)
    ]
    message = render.listing(shown, now=T0, may_end=lambda _w: True, total=73)
    assert len(message["blocks"]) == BLOCKS_MAX
    assert "25 more windows are not shown" in str(message["blocks"][-1])
    assert message["text"] == "Maintenance windows in force or planned: 73"
