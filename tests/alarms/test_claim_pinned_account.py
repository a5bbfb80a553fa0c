"""With the apps pinned to an account and region (`aws:`), only their alarms are claimed:
a same-named alarm of another account or region is no app environment's, and its
incident offers no undo of the pinned environment's changes."""

from __future__ import annotations

from typing import Any

import pytest

from bot.alarms.parse import parse_alarm
from bot.alarms.service import snapshot
from bot.config import Config, parse_config
from sandbox.alarms import alarm_message
from tests.conftest import TEST_CONFIG


def pinned(**aws: Any) -> Config:
    return parse_config(
        {
            **TEST_CONFIG,
            "aws": aws,
            "apps": {
                "checkout": {
                    "environments": {
                        "prod": {
                            "service": "checkout",
                            "cluster": "prod",
                            "container": "app",
                            "repository": "checkout",
                            "alarms": ["prod-checkout-*"],
                        }
                    }
                }
            },
        }
    )


@pytest.mark.parametrize(
    ("aws", "account", "region", "claimed"),
    [
        ({"account_id": "123456789012", "region": "us-east-1"}, "123456789012", "us-east-1", True),
        ({"account_id": "123456789012", "region": "us-east-1"}, "999999999999", "us-east-1", False),
        ({"account_id": "123456789012", "region": "us-east-1"}, "123456789012", "eu-west-1", False),
        ({"account_id": "123456789012", "region": "us-east-1"}, "999999999999", "eu-west-1", False),
        ({"account_id": "123456789012"}, "123456789012", "eu-west-1", True),
        ({"region": "us-east-1"}, "999999999999", "us-east-1", True),
        ({}, "999999999999", "eu-west-1", True),  # unpinned: wherever opsbot's AWS points
    ],
)
def test_an_alarm_is_claimed_only_in_the_pinned_account_and_region(
    aws: dict[str, str], account: str, region: str, claimed: bool
) -> None:
    alarm = parse_alarm(
        alarm_message(name="prod-checkout-5xx", state="ALARM", account=account, region=region)
    )
    assert alarm is not None and (alarm.account, alarm.region) == (account, region)
    snap = snapshot(alarm, pinned(**aws))
    expected = ("checkout", "prod", 120.0) if claimed else (None, None, None)
    assert (snap["app"], snap["env"], snap["changes_window_min"]) == expected
