"""The CLI acts as the Slack user its identity maps to (`rights.cli`), and no click
vouches for that account: a deactivated one holds no right through the CLI either."""

from __future__ import annotations

import logging

import pytest
from slack_sdk import WebClient

from bot.config import parse_config
from bot.rights.errors import RightMissing
from bot.rights.service import Rights
from bot.rights.workspace import Workspace
from sandbox.slack import SlackEmulator
from tests.conftest import TEST_CONFIG

ADMIN = "U0ADMIN"
GONE = "U0GONE"


@pytest.fixture
def rights(slack: SlackEmulator) -> Rights:
    slack.add_user(ADMIN, "ada")
    slack.add_user(GONE, "gone")
    with slack.lock:  # as users.info shows a deactivated account
        slack.users[GONE]["deleted"] = True
    data = {
        **TEST_CONFIG,
        "rights": {
            "admins": {"users": [ADMIN, GONE]},
            "cli": {"os:ada": ADMIN, "os:gone": GONE},
        },
    }
    workspace = Workspace(WebClient(token=slack.token, base_url=slack.api_url))
    return Rights(config=parse_config(data), workspace=workspace)


def test_a_cli_identity_mapped_to_a_deactivated_account_acts_as_nobody(rights: Rights) -> None:
    with pytest.raises(RightMissing) as refused:
        rights.cli_user("os:gone")
    assert str(refused.value).startswith(
        "`os:gone` acts as <@U0GONE>, whose Slack account is deactivated"
    )
    assert refused.value.right == "an active Slack account"
    assert rights.cli_user("os:ada") == ADMIN


def test_an_account_slack_cannot_read_is_said_not_refused(
    rights: Rights, slack: SlackEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    slack.faults.fail_next(10, status=429, calls=("users.info",))
    with caplog.at_level(logging.WARNING, logger="bot.rights.service"):
        assert rights.cli_user("os:gone") == GONE
    assert "whose Slack account could not be read" in caplog.text
