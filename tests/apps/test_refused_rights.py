"""A refusal names the right it is for, whatever the person's standing; one Slack could not
check names it too, as unchecked rather than missing."""

from __future__ import annotations

import pytest
from slack_sdk import WebClient

from bot.apps.access import FORCE_DEPLOYS, Access
from bot.apps.errors import NotAllowed, RightUnverifiable
from bot.apps.registry import get_target_or_raise
from bot.commands import RIGHT_NAMES, Right
from bot.config import People, parse_config
from bot.rights.workspace import Workspace
from sandbox.slack import SlackEmulator
from tests.deploys.conftest import deploy_config

GROUP = "S0FORCERS"


@pytest.fixture
def access(slack: SlackEmulator) -> Access:
    slack.add_user("U0GUEST", "guest", guest=True)
    slack.add_usergroup(GROUP, "forcers", ["U0BOB"])
    return Access(Workspace(WebClient(token=slack.token, base_url=slack.api_url)))


@pytest.mark.parametrize(
    ("user", "says"),
    [("U0BOB", "You may not force deploys"), ("U0GUEST", "Guests may not force deploys")],
)
def test_a_force_refusal_names_the_right_to_force(access: Access, user: str, says: str) -> None:
    with pytest.raises(NotAllowed) as refused:
        access.require_force(user, People(users=["U0ALICE", "U0GUEST"]))
    assert str(refused.value).startswith(says)
    assert refused.value.right == FORCE_DEPLOYS


def test_a_force_slack_could_not_check_names_the_right_unchecked(
    access: Access, slack: SlackEmulator
) -> None:
    slack.faults.fail_next(10, status=500, calls=("usergroups.users.list",))
    with pytest.raises(RightUnverifiable) as unchecked:
        access.require_force("U0BOB", People(groups=[GROUP]))
    assert unchecked.value.right == FORCE_DEPLOYS
    assert str(unchecked.value).startswith("opsbot could not check whether you may force")


def test_a_deploy_refusal_names_the_deployers_right(access: Access) -> None:
    target = get_target_or_raise(parse_config(deploy_config()), app="api", env="staging")
    with pytest.raises(NotAllowed) as refused:
        access.require("U0CAROL", target, action="deploy to")
    assert refused.value.right == RIGHT_NAMES[Right.DEPLOY]
