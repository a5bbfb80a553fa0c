"""Who may hold a target how long, and who may end a window, whatever the windows around it.

`max_min` bounds a target's hold in one run (windows end to end count together),
and a window whose route has left the config is no one's to end but an admin's.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.clock import ManualClock
from bot.maintenance import render
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import T0, click, command, responses_to
from tests.maintenance.conftest import audit_lines, config_with, silence, windows_of
from tests.support import LiveService, wait_for

UP_TO_2H = {"incidents": {"silence": {"channel_members": True, "max_min": 120}}}


def made(reply: str | None) -> bool:
    return reply is not None and "Maintenance window #" in reply


def test_windows_end_to_end_hold_a_target_no_longer_than_max_min(
    start: Callable[..., LiveService], clock: ManualClock, slack: SlackEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start(config_with(rights=UP_TO_2H))
    _, reply = silence(service, slack, "silence prod for 2h reason drill")
    assert made(reply)

    # Starting as #1 ends: prod would be held 4h in a row. Refused, audited, nothing stored.
    _, reply = silence(service, slack, "silence prod in 120m for 2h reason drill, part 2")
    assert reply is not None
    assert "With maintenance window(s) #1 (route `prod`, until " in reply
    assert "this one would hold alarms of route `prod` for 240 minutes in a row" in reply
    assert "120 minutes at most, not 240" in reply
    assert len(windows_of(service)) == 1
    [_, refused] = audit_lines(service, "maintenance.create")
    assert (refused.actor, refused.outcome, refused.target) == ("U0ALICE", "refused", "route:prod")
    assert "240 minutes in a row" in refused.detail["reason"]

    # Inside #1's run, or apart from it, a window is the length it says.
    _, reply = silence(service, slack, "silence prod in 60m for 1h reason inside")
    assert made(reply)
    _, reply = silence(service, slack, "silence prod in 180m for 1h reason apart")
    assert made(reply)
    # Filling the gap would join #1, #2 and #3 into one run of 4h: refused, whatever its own length.
    _, reply = silence(service, slack, "silence prod in 120m for 1h reason the gap")
    assert reply is not None and re.findall(r"#(\d) \(route `prod`, until", reply) == [
        "1",
        "2",
        "3",
    ]
    assert "120 minutes at most, not 240" in reply
    assert len(windows_of(service)) == 3

    # A run counts from now: once #1 and #2 are over, the gap fills up to #3, with a glob
    # over alarms `prod` may hold counted in it (bot/maintenance/overlap.py).
    clock.advance(minutes=120)
    _, reply = silence(service, slack, "silence prod-api-* for 2h reason other target")
    assert made(reply)
    _, reply = silence(service, slack, "silence prod for 1h reason the gap, later")
    assert made(reply)
    # ... and the glob's run is bounded as well, on every route it may reach.
    _, reply = silence(service, slack, "silence prod-api-* in 120m for 1m reason more")
    assert reply is not None and "alarms `prod-api-*` for 121 minutes in a row" in reply
    assert "120 minutes at most, not 121" in reply
    assert [w.pattern for w in windows_of(service)] == ["prod"] * 3 + ["prod-api-*", "prod"]


def test_a_window_ended_early_no_longer_counts_in_the_run(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE"])
    service = start(config_with(rights=UP_TO_2H))
    assert made(silence(service, slack, "silence prod for 2h reason drill")[1])
    _, reply = silence(service, slack, "silence end 1")
    assert reply is not None and "Maintenance window #1 ended" in reply
    assert made(silence(service, slack, "silence prod for 2h reason drill, again")[1])
    assert windows_of(service)[1].starts_at == T0


def test_a_window_over_a_route_since_renamed_is_ended_by_admins_only(
    start: Callable[..., LiveService], slack: SlackEmulator
) -> None:
    slack.add_user("U0GUEST", "guest", guest=True)
    slack.set_channel_members("C0PRODALERTS", ["U0ALICE", "U0GUEST"])
    first = start()
    assert made(silence(first, slack, "silence prod for 1h reason failover drill")[1])
    first.stop()
    # `prod` is renamed `prod-eu`: the window stays, over a route no longer in the config.
    prod, default = TEST_CONFIG["alarm_routes"]
    second = start(
        config_with(
            alarm_routes=[{**prod, "name": "prod-eu"}, default],
            rights={"admins": {"users": ["U0CAROL"]}},
        )
    )
    [window] = windows_of(second)
    for user in ("U0BOB", "U0GUEST", "U0ALICE"):  # Alice made it, but holds no right on it now
        assert not second.runtime.maintenance.may_end(user, window)
        _, reply = silence(second, slack, "silence end 1", user_id=user)
        assert reply is not None
        assert "You may not end the window over route `prod` (no route has that name now)" in reply
        assert "needs the `admin` right" in reply
    refused = audit_lines(second, "maintenance.end")
    assert [(r.actor, r.outcome) for r in refused] == [
        ("U0BOB", "refused"),
        ("U0GUEST", "refused"),
        ("U0ALICE", "refused"),
    ]
    assert windows_of(second)[0].ended_at is None

    # No End button for them in the listing; a click anyway is refused.
    url = slack.response_url()
    command(second, "/incident", "silences", user_id="U0BOB", response_url=url)
    [listing] = wait_for(lambda: responses_to(slack, url))
    assert "#1 route `prod`" in str(listing["blocks"]) and render.END not in str(listing["blocks"])
    url = slack.response_url()
    click(second, render.END, "1", user_id="U0GUEST", response_url=url)
    [answer] = wait_for(lambda: responses_to(slack, url))
    assert "needs the `admin` right" in answer["text"]
    assert windows_of(second)[0].ended_at is None

    # An admin may end it.
    assert second.runtime.maintenance.may_end("U0CAROL", window)
    _, reply = silence(second, slack, "silence end 1", user_id="U0CAROL")
    assert reply is not None and "Maintenance window #1 ended" in reply
    assert windows_of(second)[0].ended_by == "U0CAROL"
