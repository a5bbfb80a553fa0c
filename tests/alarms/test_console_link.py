"""The CloudWatch console link: a known console host, a known region, a quoted name."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from urllib.parse import urlsplit

import boto3
import pytest

from bot.alarms import describe
from bot.alarms.parse import parse_alarm
from sandbox.alarms import alarm_message

AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _url(*, arn: str, name: str = "a") -> str | None:
    message = json.loads(alarm_message(name=name, state="ALARM", at=AT))
    message["AlarmArn"] = arn
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None
    return describe.console_url(alarm)


def test_the_region_list_covers_every_region_botocore_knows() -> None:
    """A new AWS region reaches the list when botocore (pinned) is upgraded."""
    session = boto3.session.Session()
    for partition, codes in describe.REGIONS.items():
        known = set(session.get_available_regions("cloudwatch", partition_name=partition))
        assert known <= set(codes), f"{partition}: add {sorted(known - set(codes))}"


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("eu-west-1", "eu-west-1.console.aws.amazon.com"),
        ("cn-northwest-1", "cn-northwest-1.console.amazonaws.cn"),
        ("us-gov-west-1", "us-gov-west-1.console.amazonaws-us-gov.com"),
    ],
)
def test_each_partition_links_to_its_own_console(region: str, host: str) -> None:
    url = _url(arn=f"arn:aws:cloudwatch:{region}:123456789012:alarm:a")
    assert url is not None and urlsplit(url).hostname == host


@pytest.mark.parametrize(
    "region",
    [
        "evil.example/x",
        "evil.example",
        "us-east-1.evil.example",
        "us-east-1@evil.example",
        "US-EAST-1",
        "us-east-9",
        "",
    ],
)
def test_a_region_that_is_not_an_aws_region_gives_no_link(region: str) -> None:
    assert _url(arn=f"arn:aws:cloudwatch:{region}:123456789012:alarm:a") is None


def test_the_alarm_name_is_quoted_into_the_fragment() -> None:
    url = _url(arn="arn:aws:cloudwatch:us-east-1:123456789012:alarm:x", name="a|b>c#d e/f<g")
    assert url == (
        "https://us-east-1.console.aws.amazon.com/cloudwatch/home?region=us-east-1"
        "#alarmsV2:alarm/a%7Cb%3Ec%23d%20e%2Ff%3Cg"
    )
