"""Alarm → app environment: by name globs, by dimensions, and globs that could overlap."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.alarms.parse import parse_alarm
from bot.apps.claims import claim_for, globs_overlap, overlapping_globs
from bot.cli import main
from bot.config import Config, parse_config
from sandbox.alarms import alarm_message
from tests.conftest import TEST_CONFIG

ENV = {"service": "checkout", "container": "app", "repository": "checkout"}


def config(**environments: dict[str, Any]) -> Config:
    return parse_config(
        {
            **TEST_CONFIG,
            "apps": {
                "checkout": {
                    "environments": {
                        name: {**ENV, "cluster": name, **extra}
                        for name, extra in environments.items()
                    }
                }
            },
        }
    )


def dims(**values: str) -> list[tuple[str, str]]:
    return list(values.items())


def test_globs_claim_first_then_dimensions_and_nothing_else_claims() -> None:
    found = config(
        prod={
            "alarms": ["prod-checkout-*"],
            "load_balancer": (
                "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web/50dc6c49"
            ),
        },
        staging={"target_group": "targetgroup/checkout-staging/73e2d6bc"},
    )
    claim = claim_for(found, alarm_name="prod-checkout-5xx", dimensions=[])
    assert claim is not None and (claim.label, claim.by) == ("checkout/prod", "alarms glob")
    # The ECS service's own dimensions; the cluster must agree when it is given.
    claim = claim_for(
        found, alarm_name="cpu", dimensions=dims(ClusterName="staging", ServiceName="checkout")
    )
    assert claim is not None and (claim.label, claim.by) == ("checkout/staging", "ECS service")
    assert (
        claim_for(
            found, alarm_name="cpu", dimensions=dims(ClusterName="other", ServiceName="checkout")
        )
        is None
    )
    claim = claim_for(found, alarm_name="x", dimensions=dims(LoadBalancer="app/web/50dc6c49"))
    assert claim is not None and (claim.label, claim.by) == ("checkout/prod", "load balancer")
    claim = claim_for(
        found, alarm_name="x", dimensions=dims(TargetGroup="targetgroup/checkout-staging/73e2d6bc")
    )
    assert claim is not None and (claim.label, claim.by) == ("checkout/staging", "target group")
    assert (
        claim_for(found, alarm_name="prod-payments-5xx", dimensions=dims(ServiceName="pay")) is None
    )
    assert claim_for(found, alarm_name="PROD-CHECKOUT-5XX", dimensions=[]) is None


def test_the_parsed_alarm_carries_its_metric_dimensions() -> None:
    message = json.loads(alarm_message(name="cpu-high", state="ALARM"))
    message["Trigger"] = {
        "MetricName": "CPUUtilization",
        "Namespace": "AWS/ECS",
        "Statistic": "AVERAGE",
        "Dimensions": [
            {"value": "prod", "name": "ClusterName"},
            {"value": "checkout", "name": "ServiceName"},
        ],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 90.0,
    }
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None
    named = [(d.name, d.value) for d in alarm.dimensions]
    assert named == [("ClusterName", "prod"), ("ServiceName", "checkout")]
    claim = claim_for(config(prod={}), alarm_name=alarm.name, dimensions=named)
    assert claim is not None and claim.label == "checkout/prod"


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ("prod-*", "prod-checkout-*", True),
        ("prod-checkout-*", "staging-checkout-*", False),
        ("*-5xx", "prod-*", True),
        ("prod-?", "prod-ab", False),
        ("prod-[ab]*", "prod-c*", False),
        ("prod-[!a]x", "prod-ax", False),
        ("prod-[!a]x", "prod-bx", True),
        ("a*b*c", "*x*", True),
        ("abc", "abc", True),
        ("abc", "abd", False),
    ],
)
def test_globs_overlap(first: str, second: str, overlap: bool) -> None:
    assert globs_overlap(first, second) is overlap
    assert globs_overlap(second, first) is overlap


NAMES = st.text(alphabet="ab-", max_size=6)
GLOBS = st.text(alphabet="ab-*?", max_size=5)


@given(first=GLOBS, second=GLOBS, name=NAMES)
def test_a_name_both_globs_match_is_always_reported_as_an_overlap(
    first: str, second: str, name: str
) -> None:
    if fnmatchcase(name, first) and fnmatchcase(name, second):
        assert globs_overlap(first, second)


def test_check_config_notes_globs_of_two_environments_that_could_claim_one_alarm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    found = config(prod={"alarms": ["prod-*"]}, staging={"alarms": ["*-checkout-*", "stg-*"]})
    [line] = overlapping_globs(found)
    assert line == (
        "apps.checkout.environments.prod.alarms[0] 'prod-*' and "
        "apps.checkout.environments.staging.alarms[0] '*-checkout-*' could match the same "
        "alarm: checkout/prod (first in the file) claims it"
    )
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(found.model_dump(mode="json", exclude_none=True)))
    assert main(["check-config", str(path)]) == 0
    assert f"note: {line}" in capsys.readouterr().out
    assert (
        overlapping_globs(config(prod={"alarms": ["prod-*"]}, staging={"alarms": ["stg-*"]})) == []
    )
