"""Parsing CloudWatch alarm messages: every alarm kind, odd literals, non-alarms."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bot.alarms import describe
from bot.alarms.parse import (
    CompositeTrigger,
    MetricMathTrigger,
    MetricTrigger,
    normalise_treat_missing_data,
    parse_alarm,
    parse_time,
)
from sandbox.alarms import alarm_message

# As AWS documents it (CloudWatch alarm notification for an SNS email/HTTP subscriber).
AWS_SAMPLE = json.dumps(
    {
        "AlarmName": "Example alarm name",
        "AlarmDescription": "Example alarm description.",
        "AWSAccountId": "000000000000",
        "AlarmConfigurationUpdatedTimestamp": "2017-12-14T01:00:00.000Z",
        "NewStateValue": "ALARM",
        "NewStateReason": "Threshold Crossed: 1 datapoint (10.0) was greater than or equal to the threshold (1.0).",
        "StateChangeTime": "2017-12-14T01:00:00.000Z",
        "Region": "EU - Ireland",
        "AlarmArn": "arn:aws:cloudwatch:eu-west-1:000000000000:alarm:Example alarm name",
        "OldStateValue": "OK",
        "OKActions": [],
        "AlarmActions": ["arn:aws:sns:eu-west-1:000000000000:example-topic"],
        "InsufficientDataActions": [],
        "Trigger": {
            "MetricName": "DeliveryErrors",
            "Namespace": "ExampleNamespace",
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Unit": None,
            "Dimensions": [{"value": "prod", "name": "Stage"}],
            "Period": 300,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Threshold": 1.0,
            "TreatMissingData": "",
            "EvaluateLowSampleCountPercentile": "",
        },
    }
)


def test_single_metric_alarm_from_aws_docs() -> None:
    alarm = parse_alarm(AWS_SAMPLE)
    assert alarm is not None
    assert alarm.name == "Example alarm name"
    assert alarm.region == "eu-west-1"  # from the ARN, not the display name
    assert alarm.region_name == "EU - Ireland"
    assert alarm.account == "000000000000"
    assert (alarm.old_state, alarm.new_state) == ("OK", "ALARM")
    assert alarm.state_change_time == datetime(2017, 12, 14, 1, 0, tzinfo=UTC)
    assert isinstance(alarm.trigger, MetricTrigger)
    assert alarm.kind == "metric"
    assert (
        describe.metric_text(alarm)
        == "ExampleNamespace/DeliveryErrors (Stage=prod): Sum over 300 s"
    )
    assert describe.threshold_text(alarm) == ">= 1 for 1 of 1 periods"
    assert describe.console_url(alarm) == (
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#alarmsV2:alarm/Example%20alarm%20name"
    )


def test_metric_math_alarm() -> None:
    alarm = parse_alarm(alarm_message(name="prod-error-rate", state="ALARM", kind="metric-math"))
    assert alarm is not None and isinstance(alarm.trigger, MetricMathTrigger)
    assert alarm.kind == "metric-math"
    assert [q.id for q in alarm.trigger.queries] == ["e1", "errors", "requests"]
    assert describe.metric_text(alarm) == "e1 = 100 * errors / requests"
    assert describe.threshold_text(alarm) == "> 5 for 2 of 3 periods"


def test_anomaly_detection_alarm() -> None:
    alarm = parse_alarm(alarm_message(name="checkout-latency", state="ALARM", kind="anomaly"))
    assert alarm is not None and isinstance(alarm.trigger, MetricMathTrigger)
    assert alarm.kind == "anomaly"
    assert alarm.trigger.threshold_metric_id == "ad1"
    assert alarm.trigger.treat_missing_data == "missing"
    assert describe.threshold_text(alarm) == "outside the band of ad1 for 2 of 2 periods"


def test_composite_alarm() -> None:
    alarm = parse_alarm(alarm_message(name="prod-site-down", state="ALARM", kind="composite"))
    assert alarm is not None and isinstance(alarm.trigger, CompositeTrigger)
    assert alarm.kind == "composite"
    assert alarm.trigger.rule.startswith("ALARM(")
    assert describe.threshold_text(alarm) == "children in ALARM: prod-site-down-child"


def test_composite_alarm_with_no_triggering_children() -> None:
    message = json.loads(alarm_message(name="c", state="OK", kind="composite"))
    message["TriggeringChildren"] = []
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None and isinstance(alarm.trigger, CompositeTrigger)
    assert describe.threshold_text(alarm) == "children in ALARM: none reported"


@pytest.mark.parametrize("state", ["ALARM", "OK", "INSUFFICIENT_DATA"])
def test_every_state_parses(state: str) -> None:
    alarm = parse_alarm(alarm_message(name="x", state=state))
    assert alarm is not None and alarm.new_state == state


@pytest.mark.parametrize(
    "literal, expected",
    [
        ("- TreatMissingData:                    missing", "missing"),
        ("- TreatMissingData:  notBreaching", "notBreaching"),
        ("breaching", "breaching"),
        ("", None),
        (None, None),
    ],
)
def test_treat_missing_data_is_normalised(literal: str | None, expected: str | None) -> None:
    assert normalise_treat_missing_data(literal) == expected


def test_unknown_keys_and_null_description_are_ignored() -> None:
    message = json.loads(AWS_SAMPLE)
    message["AlarmDescription"] = None
    message["SomethingNewFromAws"] = {"nested": [1, 2]}
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None and alarm.description is None


@pytest.mark.parametrize(
    "text",
    [
        "Backup finished",
        "",
        "[1, 2, 3]",
        json.dumps({"AlarmName": "x"}),  # no state
        json.dumps({"AlarmName": "x", "NewStateValue": "BROKEN"}),
        json.dumps({"default": "hello"}),
    ],
)
def test_messages_that_are_not_alarms_yield_none(text: str) -> None:
    assert parse_alarm(text) is None


def test_china_partition_console_link() -> None:
    message = json.loads(AWS_SAMPLE)
    message["AlarmArn"] = "arn:aws-cn:cloudwatch:cn-north-1:000000000000:alarm:x"
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None
    assert describe.console_url(alarm) == (
        "https://cn-north-1.console.amazonaws.cn/cloudwatch/home?region=cn-north-1#alarmsV2:alarm/Example%20alarm%20name"
    )


def test_cloudwatch_time_format() -> None:
    assert parse_time("2021-11-10T02:45:55.640+0000") == datetime(
        2021, 11, 10, 2, 45, 55, 640000, tzinfo=UTC
    )
    assert parse_time("not a time") is None
    # Out of datetime's range once in UTC: no time, as for any other bad value.
    assert parse_time("0001-01-01T00:00:00+05:00") is None
    assert parse_time("9999-12-31T23:59:59-05:00") is None


def test_an_alarm_whose_time_has_no_utc_date_is_still_read() -> None:
    message = json.loads(AWS_SAMPLE)
    message["StateChangeTime"] = "9999-12-31T23:59:59-05:00"
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None and alarm.state_change_time.year < 9999
