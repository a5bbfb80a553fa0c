"""A flag change's request shows whoever clicks what changes, whatever else the flag holds.

A flag's other attributes may hold long strings (AppConfig allows 1,024
characters each), and a requester may set some of them in the same `/flag
set`. The request's summary is led by what changes and nothing else, each value
cut around where it changes; Now and After show only the changed values. A
change too large to show whole in a summary is refused, never asked cut.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bot.approvals import render as approval_render
from bot.clock import ManualClock
from bot.flags import flows, render
from bot.flags.errors import FlagRefused
from bot.runtime import Runtime
from tests.flags.conftest import FLAGS_DOCUMENT, FlagWorld
from tests.flags.test_appconfig import audits, change
from tests.flags.test_undeployed import deploy_version, newest_request

PADDED = "x" * 1000


def deploy_checkout(fw: FlagWorld, clock: ManualClock, **notices: str) -> None:
    """Version 2, deployed: a flag `checkout` with long notices and a rollout percentage."""
    document: dict[str, Any] = copy.deepcopy(FLAGS_DOCUMENT)
    names = ["notice_a", "notice_b", "notice_c", *notices]
    attributes = {name: {"constraints": {"type": "string"}} for name in names}
    attributes["rollout_percent"] = {"constraints": {"type": "number"}}
    document["flags"]["checkout"] = {"name": "Checkout", "attributes": attributes}
    values = {name: notices.get(name, PADDED) for name in names}
    document["values"]["checkout"] = {"enabled": True, **values, "rollout_percent": 10}
    assert fw.write(document, "Terraform") == 2
    deploy_version(fw, clock, number=2)


def sections(runtime: Runtime) -> list[str]:
    """The text of each section of the request's message, as Slack shows it."""
    message = approval_render.confirmation(newest_request(runtime), confirm_label="Change the flag")
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section"]


def test_padded_attributes_never_push_the_change_out_of_the_request(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_checkout(flag_world, clock)
    asked = change("set", "checkout", notice_c="y" * 1000, rollout_percent="100")

    assert "waits for your confirmation" in flows.submit(runtime, asked)

    summary, details = sections(runtime)[:2]
    cut_x, cut_y = '"' + "x" * 99 + "…", '"' + "y" * 99 + "…"
    assert summary == (
        "<@U0ALICE> asks to change flag `checkout` of `api/prod`: "
        f"*notice_c {cut_x} → {cut_y} · rollout_percent 10 → 100*"
    )
    now, after = details.split("\n")[:2]  # two values change: 250 characters each
    assert now == f'*Now* notice_c="{"x" * 249}… · rollout_percent=10'
    assert after == f'*After* notice_c="{"y" * 249}… · rollout_percent=100'
    assert "notice_a" not in details and "notice_b" not in details
    assert "*AppConfig* a new version made from the deployed version 2" in details


def test_a_value_that_changes_only_at_its_end_shows_where(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    deploy_checkout(flag_world, clock)

    flows.submit(runtime, change("set", "checkout", notice_a="x" * 999 + "z"))

    summary = sections(runtime)[0]
    assert summary == (
        "<@U0ALICE> asks to change flag `checkout` of `api/prod`: "
        f'*notice_a …{"x" * 21}" → …{"x" * 20}z"*'
    )


def test_a_change_too_large_to_show_whole_is_refused_not_asked(
    runtime: Runtime, flag_world: FlagWorld, clock: ManualClock
) -> None:
    more = {f"notice_{n}": "short" for n in "defghij"}
    deploy_checkout(flag_world, clock, **more)
    every = {name: "y" * 200 for name in ["notice_a", "notice_b", "notice_c", *more]}

    with pytest.raises(FlagRefused) as refused:
        flows.submit(runtime, change("set", "checkout", **every))

    assert str(refused.value) == (
        "What this changes in `checkout` is more than a request for `api/prod` can show "
        "whoever clicks. Nothing was asked: change fewer attributes at a time."
    )
    assert newest_request(runtime) is None
    [line] = audits(runtime, "flag.change")
    assert (line.outcome, line.detail["reason"]) == ("refused", str(refused.value))


@pytest.mark.parametrize(
    ("before", "after", "shown"),
    [
        ({"enabled": False}, {"enabled": True}, "off → on"),
        ({"value": "false"}, {"value": "true"}, "false → true"),  # SSM
        (
            {"enabled": True, "regions": ["eu"], "note": "<!channel>"},
            {"enabled": True, "regions": ["eu", "us"], "note": "<!channel>"},
            'regions ["eu"] → ["eu", "us"]',
        ),
        ({"enabled": True}, {"enabled": True, "sticky": True}, "sticky (unset) → true"),
        (
            {"enabled": True, "m": "a&b"},
            {"enabled": True, "m": "<@U0EVE>"},
            'm "a&amp;b" → "&lt;@U0EVE&gt;"',
        ),
    ],
)
def test_the_delta_is_what_changes_and_nothing_else(
    before: dict[str, Any], after: dict[str, Any], shown: str
) -> None:
    assert render.delta_text(before, after, width=100) == shown
