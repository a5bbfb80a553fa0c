"""Incidents of a route since renamed or removed: only admins act on them.

The route's rights left the config with it; its open incidents do not fall back
to `rights.incidents` (by default, anyone in the channel), which would grant
more than the route did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bot.config import Config, parse_config
from bot.incidents import render
from bot.settings import Settings
from sandbox.pagerduty import PagerDutyEmulator
from sandbox.slack import SlackEmulator
from sandbox.sns import SnsSigner
from tests.conftest import TEST_CONFIG
from tests.incidents.helpers import audit_of, click, page, pd_calls, responses_to
from tests.incidents.test_rights import ONCALL_GROUP, assert_untouched
from tests.support import LiveService, wait_for

ADMIN = "U0CAROL"
GONE = "(no route has that name now)"


def config_with(prod_name: str) -> Config:
    """TEST_CONFIG whose paging route, named `prod_name`, lets only on-call act."""
    prod, default = TEST_CONFIG["alarm_routes"]
    only_oncall = {"groups": [ONCALL_GROUP]}
    route = {**prod, "name": prod_name, "rights": {"respond": only_oncall, "silence": only_oncall}}
    return parse_config(
        {**TEST_CONFIG, "alarm_routes": [route, default], "rights": {"admins": {"users": [ADMIN]}}}
    )


@pytest.fixture
def start(
    settings: Settings, make_service: Callable[..., LiveService]
) -> Callable[[str], LiveService]:
    """The service with the paging route named as given."""
    return lambda prod_name: make_service(settings, config_with(prod_name))


def test_incidents_of_a_route_since_renamed_are_acted_on_by_admins_only(
    start: Callable[[str], LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    slack.add_user(ADMIN, "carol", email="carol@example.com")
    pagerduty.add_user("PCAROL", "Carol Example", "carol@example.com")
    slack.add_usergroup(ONCALL_GROUP, "oncall", ["U0BOB"])
    first = start("prod")
    incident_id, message = page(first, sns_signer, slack, pagerduty)
    first.stop()
    # `prod` is renamed `prod-eu` while its incident is open.
    second = start("prod-eu")
    updates = message.updates

    def refusal(action_id: str, user_id: str, **kwargs: Any) -> str:
        url = slack.response_url()
        click(second, action_id, user_id=user_id, response_url=url, **kwargs)
        [reply] = wait_for(lambda: responses_to(slack, url))
        return str(reply["text"])

    with caplog.at_level("WARNING", logger="bot.incidents.actions"):
        # Alice is in the channel (the default right); Bob was on-call (the route's).
        said = refusal(render.ACKNOWLEDGE, "U0ALICE", value=str(incident_id))
        assert (
            f"You may not acknowledge #{incident_id} (prod-api-5xx) on route `prod` {GONE}" in said
        )
        assert f"{GONE}: that needs the `admin` right, held by <@{ADMIN}>" in said
        said = refusal(render.SILENCE, "U0BOB", selected_option=f"{incident_id}:30m")
        assert f"You may not silence #{incident_id} (prod-api-5xx) on route `prod` {GONE}" in said
    assert_untouched(second, pagerduty, incident_id, updates, message)
    assert [(r.actor, r.action, r.outcome) for r in audit_of(second, incident_id)] == [
        ("U0ALICE", "incident.acknowledge", "refused"),
        ("U0BOB", "incident.silence", "refused"),
    ]
    warnings = [r for r in caplog.records if "no longer in the config" in r.getMessage()]
    assert [(r.levelname, r.incident, r.route) for r in warnings] == [  # type: ignore[attr-defined]
        ("WARNING", incident_id, "prod"),
        ("WARNING", incident_id, "prod"),
    ]
    # Home offers its buttons to the admin only.
    for user_id, may in (("U0ALICE", False), ("U0BOB", False), (ADMIN, True)):
        [shown] = second.runtime.home.views.content(user_id).incidents  # type: ignore[union-attr]
        assert shown.may_respond is may

    url = slack.response_url()
    click(second, render.ACKNOWLEDGE, str(incident_id), user_id=ADMIN, response_url=url)
    [put] = wait_for(lambda: pd_calls(pagerduty, "PUT"))
    assert put["from"] == "carol@example.com"
    ok = wait_for(lambda: len(audit_of(second, incident_id)) == 3 and audit_of(second, incident_id))
    assert (ok[-1].actor, ok[-1].action, ok[-1].outcome) == (ADMIN, "incident.acknowledge", "ok")


def test_a_refusal_while_slack_is_down_names_no_gone_route(
    start: Callable[..., LiveService],
    sns_signer: SnsSigner,
    slack: SlackEmulator,
    pagerduty: PagerDutyEmulator,
) -> None:
    first = start("prod-secret-payments")
    incident_id, _message = page(first, sns_signer, slack, pagerduty)
    first.stop()
    second = start("renamed")
    # opsbot cannot tell whether Bob sees the incident: he is told its number only.
    slack.faults.fail_for(30, status=500, calls=("users.info", "conversations."))
    url = slack.response_url()
    click(second, render.ACKNOWLEDGE, str(incident_id), user_id="U0BOB", response_url=url)
    [reply] = wait_for(lambda: responses_to(slack, url))
    slack.faults.clear()
    assert f"#{incident_id}" in reply["text"], reply["text"]
    assert "prod-secret-payments" not in reply["text"] and "route" not in reply["text"]
