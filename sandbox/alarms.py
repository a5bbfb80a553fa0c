"""CloudWatch alarm messages shaped like the real ones, for tests and the sandbox."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

REGION_NAMES = {"us-east-1": "US East (N. Virginia)", "eu-west-1": "Europe (Ireland)"}


def _time(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        + f"{moment.microsecond // 1000:03d}+0000"
    )


def alarm_message(
    *,
    name: str,
    state: str,
    old_state: str | None = None,
    account: str = "123456789012",
    region: str = "us-east-1",
    reason: str | None = None,
    at: datetime | None = None,
    kind: str = "metric",
    description: str | None = None,
) -> str:
    """The JSON CloudWatch puts in the SNS Message for one state change."""
    at = at or datetime.now(UTC)
    old_state = old_state or ("OK" if state == "ALARM" else "ALARM")
    arn = f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
    message: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": description,
        "AWSAccountId": account,
        "AlarmConfigurationUpdatedTimestamp": "2026-01-01T00:00:00.000+0000",
        "NewStateValue": state,
        "NewStateReason": reason
        or (
            "Threshold Crossed: 1 out of the last 1 datapoints [42.0 (10/11/21 02:44:00)] was "
            "greater than the threshold (10.0) (minimum 1 datapoint for OK -> ALARM transition)."
            if state == "ALARM"
            else "Threshold Crossed: 1 out of the last 1 datapoints [1.0] was not greater "
            "than the threshold (10.0)."
        ),
        "StateChangeTime": _time(at),
        "Region": REGION_NAMES.get(region, region),
        "AlarmArn": arn,
        "OldStateValue": old_state,
        "OKActions": [f"arn:aws:sns:{region}:{account}:alarms"],
        "AlarmActions": [f"arn:aws:sns:{region}:{account}:alarms"],
        "InsufficientDataActions": [],
    }
    if kind == "composite":
        message["AlarmRule"] = f'ALARM("arn:aws:cloudwatch:{region}:{account}:alarm:{name}-child")'
        message["TriggeringChildren"] = [
            {
                "Arn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}-child",
                "State": {"Value": state, "Timestamp": _time(at)},
            }
        ]
    elif kind == "metric-math":
        message["Trigger"] = {
            "Period": 60,
            "EvaluationPeriods": 3,
            "DatapointsToAlarm": 2,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 5.0,
            "TreatMissingData": "missing",
            "EvaluateLowSampleCountPercentile": "",
            "Metrics": [
                {
                    "Id": "e1",
                    "Expression": "100 * errors / requests",
                    "Label": "error rate",
                    "ReturnData": True,
                },
                {
                    "Id": "errors",
                    "ReturnData": False,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/ApplicationELB",
                            "MetricName": "HTTPCode_Target_5XX_Count",
                            "Dimensions": [{"value": "app/prod/123", "name": "LoadBalancer"}],
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                },
                {
                    "Id": "requests",
                    "ReturnData": False,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/ApplicationELB",
                            "MetricName": "RequestCount",
                            "Dimensions": [{"value": "app/prod/123", "name": "LoadBalancer"}],
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                },
            ],
        }
    elif kind == "anomaly":
        message["Trigger"] = {
            "Period": 300,
            "EvaluationPeriods": 2,
            "ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold",
            "ThresholdMetricId": "ad1",
            "TreatMissingData": "- TreatMissingData:  missing",
            "EvaluateLowSampleCountPercentile": "",
            "Metrics": [
                {
                    "Id": "m1",
                    "ReturnData": True,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/Lambda",
                            "MetricName": "Duration",
                            "Dimensions": [{"value": "checkout", "name": "FunctionName"}],
                        },
                        "Period": 300,
                        "Stat": "p99",
                    },
                },
                {
                    "Id": "ad1",
                    "Expression": "ANOMALY_DETECTION_BAND(m1, 2)",
                    "Label": "Duration (expected)",
                    "ReturnData": True,
                },
            ],
        }
    else:
        message["Trigger"] = {
            "MetricName": "HTTPCode_Target_5XX_Count",
            "Namespace": "AWS/ApplicationELB",
            "StatisticType": "Statistic",
            "Statistic": "SUM",
            "Unit": None,
            "Dimensions": [{"value": "app/prod-api/50dc6c495c0c9188", "name": "LoadBalancer"}],
            "Period": 60,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 10.0,
            "TreatMissingData": "- TreatMissingData:                    missing",
            "EvaluateLowSampleCountPercentile": "",
        }
    return json.dumps(message)


def alarm_subject(name: str, state: str, region: str = "us-east-1") -> str:
    """SNS subjects are cut under 100 characters, as CloudWatch does."""
    return f'{state}: "{name}" in {REGION_NAMES.get(region, region)}'[:99]
