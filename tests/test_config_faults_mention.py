"""A route's `mention` must be one Slack notifies: `@prod-oncall` as typed in Slack's
message box would be posted as plain text and wake nobody."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from bot.config import ConfigError, parse_config


def routes(mention: str, name: str | None = "prod") -> dict[str, Any]:
    route: dict[str, Any] = {"match": {"alarm_name": "prod-*"}, "channel": "C0PRODALERTS"}
    if name:
        route["name"] = name
    return {"alarm_routes": [{**route, "mention": mention}, {"match": {}, "channel": "C0ALERTS"}]}


@pytest.mark.parametrize(
    "mention",
    [
        "<!subteam^S0ONCALL>",
        "<!subteam^S0ONCALL|prod-oncall>",
        "<@U0ALICE>",
        "<@W0ALICE>",
        "<!here>",
        "<!channel>",
        "<!everyone>",
        "<!subteam^S0ONCALL> <@U0ALICE>",
    ],
)
def test_slack_mentions_are_taken(mention: str) -> None:
    assert parse_config(routes(mention)).alarm_routes[0].mention == mention


@pytest.mark.parametrize(
    "mention", ["@prod-oncall", "@here", "S0ONCALL", "<@alice>", "<!subteam^S0ONCALL> @bob", ""]
)
def test_anything_else_is_refused_naming_the_route_and_key(mention: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(routes(mention))
    assert caught.value.problems == [
        f"alarm_routes[0].mention: {mention!r} is not a Slack mention (route prod): "
        "write it as <!subteam^S0123> (a user group id), <@U0123> (a user id), <!here> "
        "or <!channel>, several separated by spaces"
    ]


def test_an_unnamed_route_is_named_by_its_index() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(routes("@prod-oncall", name=None))
    assert caught.value.problems[0].startswith(
        "alarm_routes[0].mention: '@prod-oncall' is not a Slack mention: write it as"
    )


def test_check_config_exits_2_on_a_handle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "alarm_routes:\n  - name: prod\n    match: {}\n    channel: C0ALERTS\n"
        '    mention: "@prod-oncall"\n'
    )
    with pytest.raises(SystemExit) as stopped:
        main(["check-config", "--offline", str(path)])
    assert stopped.value.code == 2
    assert "alarm_routes[0].mention: '@prod-oncall' is not a Slack mention" in (
        capsys.readouterr().err
    )


def test_a_labelled_mention_whose_label_holds_spaces_is_taken() -> None:
    # Slack's clients write a labelled mention with the person's full name.
    for mention in ("<@U0ALICE|Alice Smith>", "<!subteam^S0ONCALL|prod on call> <!here>"):
        assert parse_config(routes(mention)).alarm_routes[0].mention == mention
