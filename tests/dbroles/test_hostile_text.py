"""/dbrole fed by an attacker: whatever a role-manager function reports (role names,
grants, errors, schema and table names, the message it raises) and what is typed reach
Slack as text (no ping, no link), cut to fit.

The functions here are stand-ins answered by the sandbox's front door (as in
conftest.py, without a database): the bot invokes them with the real boto3 client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.clock import ManualClock
from bot.config import parse_config
from bot.settings import Settings
from sandbox.appconfig import AppConfigGaps
from sandbox.front_door import AwsFrontDoor
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG
from tests.dbroles.test_dbroles import dbrole
from tests.deploys.conftest import T0
from tests.deploys.test_hostile_text import PINGS, assert_inert
from tests.deploys.test_slack import answered
from tests.support import LiveService


class Reports:
    """A role manager whose report is written by an attacker."""

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload

    def invoke(self, event: Any) -> Any:
        return {**self.payload, "action": event.get("action")}


class Raises:
    def invoke(self, event: Any) -> Any:
        raise RuntimeError(f"could not connect: {PINGS}")


REPORT: dict[str, Any] = {
    "ok": False,
    "changed": [f"GRANT {PINGS}"],
    "errors": [f"role {PINGS} & more " * 30],
    "warnings": [PINGS],
    "roles": [
        {
            "name": "<!channel>",
            "exists": True,
            "attributes": ["LOGIN", PINGS],
            "grants": [PINGS],
            "member_of": ["<@U0BOB>"],
        }
    ],
    "schema": {"name": "<!here>", "exists": True, "owner": "<https://evil.example|owner>"},
    "tables": {"count": 3, "unreachable": ["<!everyone>", "t`x`<!here>"]},
}
FLOOD: dict[str, Any] = {
    **REPORT,
    "changed": REPORT["changed"] * 40,
    "errors": REPORT["errors"] * 40,
}


@pytest.fixture
def live(
    settings: Settings,
    slack: SlackEmulator,
    moto_server: str,
    make_service: Callable[..., LiveService],
) -> Iterator[LiveService]:
    functions = {
        "evil-role-manager": Reports(REPORT),
        "flood-role-manager": Reports(FLOOD),
        "raising-role-manager": Raises(),
    }
    door = AwsFrontDoor(moto_url=moto_server, appconfig=AppConfigGaps(), functions=functions)
    door.start()
    common = {"service": "shop", "container": "app", "repository": "shop", "cluster": "c"}
    deployers = {"users": ["U0ALICE"]}
    config = {
        **TEST_CONFIG,
        "apps": {
            "shop": {
                "environments": {
                    function.split("-")[0]: {
                        **common,
                        "service": function.removesuffix("-role-manager"),
                        "deployers": deployers,
                        "dbrole": {"function": function},
                    }
                    for function in functions
                }
            }
        },
    }
    aws_settings = settings.model_copy(update={"aws_endpoint_url": door.url})
    try:
        yield make_service(
            aws_settings, parse_config(config), clock=ManualClock(T0), run_jobs=False
        )
    finally:
        door.stop()


def test_what_a_role_manager_reports_is_shown_inert_and_cut_to_fit(
    live: LiveService, slack: SlackEmulator
) -> None:
    for verb in ("check", "provision"):
        ack, url = dbrole(live, slack, f"{verb} shop evil")
        assert_inert(ack)
        text = answered(slack, url)
        shown = assert_inert(text)
        assert len(text) <= 3000
        assert "`&lt;!channel&gt;`: LOGIN, &lt;!channel&gt;" in shown
        assert "*Schema* `&lt;!here&gt;` owned by `&lt;https://evil.example|owner&gt;`" in shown
        assert (
            "the app role cannot use: `&lt;!everyone&gt;`, `t\u02cbx\u02cb&lt;!here&gt;`" in shown
        )

    _, url = dbrole(live, slack, "provision shop flood")
    text = answered(slack, url)
    assert_inert(text)
    assert len(text) <= 2900 and text.endswith("…")
    assert "• … and 15 more" in text


def test_a_role_manager_that_raises_hostile_words_is_shown_inert(
    live: LiveService, slack: SlackEmulator
) -> None:
    _, url = dbrole(live, slack, "check shop raising")
    shown = assert_inert(answered(slack, url))
    assert "failed: RuntimeError: could not connect: &lt;!channel&gt;" in shown


def test_typed_words_are_echoed_inert(live: LiveService, slack: SlackEmulator) -> None:
    ack, _ = dbrole(live, slack, "<!channel> shop evil")
    assert assert_inert(ack).startswith("`/dbrole` does not know `&lt;!channel&gt;`.")
    ack, url = dbrole(live, slack, "check <!here> <https://evil.example|x>")
    assert "`&lt;!here&gt;/&lt;https://evil.example|x&gt;`" in assert_inert(ack)
    assert assert_inert(answered(slack, url)).startswith("Unknown app `&lt;!here&gt;`")
