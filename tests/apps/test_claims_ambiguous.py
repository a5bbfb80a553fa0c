"""An alarm naming only a ServiceName that environments in two clusters share is no one's."""

from __future__ import annotations

import json
import logging

import pytest

from bot.alarms.parse import parse_alarm
from bot.alarms.service import snapshot
from bot.apps.claims import claim_for
from sandbox.alarms import alarm_message
from tests.changes.test_claims import config, dims

LOGGER = "bot.apps.claims"


@pytest.mark.parametrize("order", [("prod", "staging"), ("staging", "prod")])
def test_a_service_name_alone_shared_by_two_clusters_claims_nothing(
    order: tuple[str, str],
) -> None:
    found = config(**{name: {} for name in order})
    assert claim_for(found, alarm_name="x", dimensions=dims(ServiceName="checkout")) is None


def test_the_cluster_still_tells_which_of_the_environments_sharing_the_name() -> None:
    found = config(prod={}, staging={})
    for cluster in ("prod", "staging"):
        claim = claim_for(
            found, alarm_name="x", dimensions=dims(ClusterName=cluster, ServiceName="checkout")
        )
        assert claim is not None and (claim.label, claim.by) == (
            f"checkout/{cluster}",
            "ECS service",
        )


def test_a_service_name_alone_still_claims_when_one_environment_runs_it() -> None:
    found = config(prod={}, staging={"service": "checkout-staging"})
    claim = claim_for(found, alarm_name="x", dimensions=dims(ServiceName="checkout"))
    assert claim is not None and (claim.label, claim.by) == ("checkout/prod", "ECS service")
    claim = claim_for(found, alarm_name="x", dimensions=dims(ServiceName="checkout-staging"))
    assert claim is not None and (claim.label, claim.by) == ("checkout/staging", "ECS service")


def test_a_load_balancer_beside_the_shared_service_name_still_claims() -> None:
    found = config(prod={}, staging={"load_balancer": "app/checkout-staging/73e2d6bc"})
    claim = claim_for(
        found,
        alarm_name="x",
        dimensions=dims(ServiceName="checkout", LoadBalancer="app/checkout-staging/73e2d6bc"),
    )
    assert claim is not None and (claim.label, claim.by) == ("checkout/staging", "load balancer")


def test_globs_still_claim_before_the_shared_service_name() -> None:
    found = config(prod={}, staging={"alarms": ["staging-*"]})
    claim = claim_for(found, alarm_name="staging-latency", dimensions=dims(ServiceName="checkout"))
    assert claim is not None and (claim.label, claim.by) == ("checkout/staging", "alarms glob")


def test_the_unclaimed_alarm_is_logged_once_with_the_candidates(
    caplog: pytest.LogCaptureFixture,
) -> None:
    found = config(prod={}, staging={})
    caplog.set_level(logging.INFO, logger=LOGGER)
    for _ in range(3):  # every notification of the alarm asks again
        claim_for(found, alarm_name="checkout-p99-once", dimensions=dims(ServiceName="checkout"))
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert "'checkout-p99-once'" in record.getMessage()
    assert "checkout/prod, checkout/staging" in record.getMessage()
    assert vars(record)["alarm_name"] == "checkout-p99-once"
    assert vars(record)["ecs_service"] == "checkout"
    assert vars(record)["candidates"] == ["checkout/prod", "checkout/staging"]
    claim_for(found, alarm_name="checkout-p50-once", dimensions=dims(ServiceName="checkout"))
    noted = [vars(r)["alarm_name"] for r in caplog.records if r.name == LOGGER]
    assert noted == ["checkout-p99-once", "checkout-p50-once"]


def test_the_incident_of_such_an_alarm_names_no_environment() -> None:
    message = json.loads(alarm_message(name="checkout-latency", state="ALARM"))
    message["Trigger"] = {
        "MetricName": "Latency",
        "Namespace": "Checkout",
        "Statistic": "AVERAGE",
        "Dimensions": [{"value": "checkout", "name": "ServiceName"}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 0.5,
    }
    alarm = parse_alarm(json.dumps(message))
    assert alarm is not None
    shown = snapshot(alarm, config(prod={}, staging={}))
    assert (shown["app"], shown["env"], shown["changes_window_min"]) == (None, None, None)
