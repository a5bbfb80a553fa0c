"""A group's parent message in a big storm: the alarms still firing are listed first,
and what does not fit one Slack message is counted, never dropped without a word."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.alarms.render import GroupLine, group_message
from bot.incidents.models import Incident
from bot.settings import Settings
from bot.slack_text import BLOCKS_MAX, MESSAGE_BUDGET, SECTION_MAX
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.alarms.test_pipeline import T0, alarm, outbox_empty, send
from tests.alarms.test_storm_reading import CHANNEL, storm_config
from tests.support import LiveService, wait_for

OPENED = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
LEFT_OUT = re.compile(r"… and (\d+) more not listed, to fit Slack \((\d+) in ALARM")


def line(n: int, *, state: str, is_open: bool, acknowledged_by: str | None = None) -> GroupLine:
    # Names of about 160 characters, as AWS alarm names of a real storm can be.
    title = f"prod-{n:04d}-" + "x" * 150
    return GroupLine(
        incident_id=1000 + n,
        title=title,
        state=state,
        is_open=is_open,
        acknowledged_by=acknowledged_by,
        threaded=True,
    )


def listed_rows(message: dict[str, Any]) -> list[str]:
    return [
        row
        for block in message["blocks"]
        if block["type"] == "section"
        for row in block["text"]["text"].split("\n")
    ]


def listed_ids(message: dict[str, Any]) -> list[int]:
    return [int(m.group(1)) for row in listed_rows(message) if (m := re.search(r"#(\d+) ", row))]


def left_out(message: dict[str, Any]) -> tuple[int, int] | None:
    """(lines left out, of them in ALARM) from the line that counts them, the list's last."""
    rows = listed_rows(message)
    counted = LEFT_OUT.search(rows[-1]) if rows else None
    return (int(counted.group(1)), int(counted.group(2))) if counted else None


def within_slack_limits(message: dict[str, Any]) -> bool:
    blocks = message["blocks"]
    texts = [block["text"]["text"] for block in blocks if "text" in block]
    texts += [e["text"] for block in blocks for e in block.get("elements", [])]
    sections = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    return (
        len(blocks) <= BLOCKS_MAX
        and all(len(text) <= SECTION_MAX for text in sections)
        and sum(len(text) for text in texts) <= MESSAGE_BUDGET
    )


def test_a_storm_too_long_for_one_message_lists_every_firing_alarm_and_counts_the_rest() -> None:
    # The first 150 to join have resolved; the last 50 still fire.
    lines = [line(n, state="OK", is_open=False) for n in range(150)]
    lines += [line(n, state="ALARM", is_open=True) for n in range(150, 200)]
    message = group_message(route_name="prod", opened_at=OPENED, lines=lines)

    assert "200 alarms on prod, 50 in ALARM" in message["text"]
    assert within_slack_limits(message)
    shown = listed_ids(message)
    firing = [1000 + n for n in range(150, 200)]
    assert shown[:50] == firing  # first, in the order they joined
    assert shown[50:] == [1000 + n for n in range(len(shown) - 50)]  # then the resolved
    assert left_out(message) == (200 - len(shown), 0)
    assert "cut to fit Slack" not in str(message["blocks"])


def test_when_even_the_firing_alarms_do_not_fit_the_count_says_how_many_are_in_alarm() -> None:
    lines = [line(n, state="OK", is_open=False) for n in range(20)]
    lines += [line(n, state="ALARM", is_open=True) for n in range(20, 320)]
    message = group_message(route_name="prod", opened_at=OPENED, lines=lines)

    assert within_slack_limits(message)
    shown = listed_ids(message)
    assert 100 < len(shown) < 300
    assert shown == [1000 + n for n in range(20, 20 + len(shown))]
    assert left_out(message) == (320 - len(shown), 300 - len(shown))
    assert "20 resolved" in listed_rows(message)[-1]


def test_firing_then_open_then_resolved_each_in_join_order_and_all_listed_when_they_fit() -> None:
    lines = [
        line(0, state="OK", is_open=False),
        line(1, state="ALARM", is_open=True),
        line(2, state="INSUFFICIENT_DATA", is_open=True),
        line(3, state="ALARM", is_open=False),  # resolved by hand, still firing
        line(4, state="OK", is_open=False),
        line(5, state="ALARM", is_open=True, acknowledged_by="<@U0ALICE>"),
        line(6, state="OK", is_open=True),
    ]
    message = group_message(route_name="prod", opened_at=OPENED, lines=lines)

    assert listed_ids(message) == [1001, 1003, 1005, 1002, 1006, 1000, 1004]
    assert left_out(message) is None
    assert "7 alarms on prod, 3 in ALARM" in message["text"]


def test_a_grouped_alarm_that_resolves_moves_below_those_still_firing(
    settings: Settings,
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    make_service: Callable[..., LiveService],
) -> None:
    service = make_service(settings, storm_config(group_above=3, group_window_s=600))
    names = [f"prod-svc-{n}" for n in range(6)]
    for n, name in enumerate(names):
        assert send(service, sns_signer, alarm(name, "ALARM", T0 + timedelta(seconds=n))) == 200
    for name in ("prod-svc-0", "prod-svc-3"):
        send(service, sns_signer, alarm(name, "OK", T0 + timedelta(minutes=5)))
    wait_for(lambda: outbox_empty(service), timeout_s=30)

    [parent] = [m for m in slack.channel_messages(CHANNEL) if "alarms on prod" in m.text]
    assert "6 alarms on prod, 4 in ALARM" in parent.text
    with service.runtime.sessions() as db:
        names_by_id = {i.id: i.alarm_name for i in db.scalars(sa.select(Incident))}
    shown = listed_ids({"blocks": parent.blocks})
    assert [names_by_id[i] for i in shown] == [
        "prod-svc-1",
        "prod-svc-2",
        "prod-svc-4",
        "prod-svc-5",
        "prod-svc-0",
        "prod-svc-3",
    ]
